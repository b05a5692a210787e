"""``[policy_endpoint]``: the policy decision service (``aml-console policy serve``) that NGINX
``auth_request``, Envoy ``ext_authz`` and Traefik ``forwardAuth`` ask before they proxy; and
``[acl]``: who may run which runbooks in this context (``console/acl.py``); ``[identity]``: who
the operator is; ``[approvals]``: which runs wait for a second operator."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from console.config_fields import Section
from console.durations import Duration

HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


class PolicyEndpointSection(Section):
    listen: str = "127.0.0.1:18090"
    """``host:port`` it serves on (``--listen`` wins). Keep it where only the gateways reach
    it: an answer tells a caller whether a client id is blocked."""
    client_header: str = "X-Client-Id"
    """The request header that names the client when it sends no API key: a claim, so only
    worth what the layer that sets it checks (an auth proxy, an mTLS subject). ``""``: keys
    only. A claim shaped like a key's pseudonym (``key-...``) or ``other``/``unknown`` is 401."""
    api_key_header: str = "Authorization"
    """A ``Bearer <key>`` here is the client, as ``key-<16 hex>`` of HMAC-SHA256(pseudonym
    secret, key), the same id the lab gateway gives that key; it wins over ``client_header``."""
    pseudonym_key: SecretStr | None = None
    """Secret of that HMAC; prefer ``CONSOLE_POLICY_ENDPOINT__PSEUDONYM_KEY`` or
    ``pseudonym_key_file``. Give it the value of the gateways' secret so both name a key
    alike."""
    pseudonym_key_file: Path | None = None
    """Default ``<run_dir>/secrets/pseudonym.key`` (the lab gateway's), made (0600) if absent."""
    cache_s: float = Field(default=0.5, ge=0, le=1.0)
    """Policy (block, budget) cache; changes also arrive by pub/sub. At most 1 s."""
    redis_failure_mode: Literal["open", "closed"] = "open"
    """When Redis is down: allow (open) or answer 503 (closed)."""
    default_qpm: int | None = Field(default=None, ge=1)
    """Budget for clients without one in the policy store (None: unlimited)."""

    @field_validator("client_header", "api_key_header")
    @classmethod
    def _header_name(cls, value: str, info: ValidationInfo) -> str:
        if value == "" and info.field_name == "client_header":
            return value
        if not HEADER_NAME.fullmatch(value):
            raise ValueError("must be an HTTP header name: letters, digits and -, 1-64 long")
        return value


class AclSection(Section):
    path: Path | None = None
    """The context's ACL policy file (YAML: groups and rules, see ``console/acl.py``).
    None: every operator may run every runbook (the lab). Once set, what no rule allows is
    denied, and a missing or invalid file refuses every run."""


class IdentitySection(Section):
    """Who the operator is: the name in every audit record, on every screen, in every approval
    (``console/operator_identity.py``)."""

    source: Literal["auto", "os", "sso-header"] = "auto"
    """``auto``: ``--operator``, ``$CONSOLE_OPERATOR`` or ``operator`` if given, else the OS user
    (a self-claimed name: fine for a lab). ``os``: the OS user only; a different name given any
    other way is an error. ``sso-header``: the user an SSO wrapper (a web terminal behind
    oauth2-proxy, Teleport...) passes as ``HTTP_<HEADER>`` in the environment, CGI-style; without
    it the console refuses to start."""
    sso_header: str = "X-Forwarded-User"
    """The header the wrapper sets, read as ``HTTP_X_FORWARDED_USER``."""

    @field_validator("sso_header")
    @classmethod
    def _sso_header_name(cls, value: str) -> str:
        if not HEADER_NAME.fullmatch(value):
            raise ValueError("must be an HTTP header name: letters, digits and -, 1-64 long")
        return value


class ApprovalsSection(Section):
    """Two-person approval of runbook runs in this context, on top of each runbook's own
    ``approval:`` (``console/runbooks/approvals.py``)."""

    required: Literal["never", "changes", "always"] = "never"
    """``changes``: every run whose plan changes something (a step that is not a no-op) waits
    for another operator's approval, as "every change in prod" does; ``always``: every run."""
    ttl: Duration = Field(default_factory=lambda: timedelta(minutes=15))
    """How long a request stays valid, pending or approved, from when it was made."""
    approvers: list[str] = Field(default_factory=list)
    """Who may approve (ids or ``group:NAME`` of the ACL policy's groups); empty: any other
    operator the ACL allows to ``approve``."""
    poll_s: float = Field(default=2.0, gt=0, le=10)
    """A waiting run is woken by Redis pub/sub when its request is decided; it also reads the
    request this often, in case a notice is lost."""

    @field_validator("ttl")
    @classmethod
    def _ttl_bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(days=7):
            raise ValueError("ttl must be between 1s and 7d")
        return value
