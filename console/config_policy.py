"""``[policy_endpoint]``: the policy decision service (``aml-console policy serve``) that NGINX
``auth_request``, Envoy ``ext_authz`` and Traefik ``forwardAuth`` ask before they proxy; and
``[acl]``: who may run which runbooks in this context (``console/acl.py``); ``[identity]``: who
the operator is; ``[approvals]``: which runs wait for a second operator."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from console.config_fields import Section
from console.durations import Duration, parse_duration
from console.errors import ConfigError

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


_STRICTNESS = {"never": 0, "changes": 1, "always": 2}


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def env_within_file(env: dict[str, Any], file: dict[str, Any]) -> dict[str, Any]:
    """The environment's settings, refused where they would loosen what the context's file
    pins: ``[identity]`` once the file sets a source other than ``auto``, and ``[approvals]``,
    which the environment may only tighten (a stricter ``required``, a shorter ``ttl``). A
    shell profile must not undo a production context's two-person rule."""
    pinned, wanted = _section(file, "identity"), _section(env, "identity")
    source = pinned.get("source", "auto")
    for name, value in wanted.items():
        if source != "auto" and pinned.get(name, value if name == "source" else None) != value:
            raise ConfigError(
                f"CONSOLE_IDENTITY__{name.upper()} cannot change [identity] {name}: the "
                f"context pins source = {source!r}"
            )
    rule, asked = _section(file, "approvals"), _section(env, "approvals")
    level = _STRICTNESS.get(str(rule.get("required", "never")), 0)
    if "required" in asked and _STRICTNESS.get(str(asked["required"]), 0) < level:
        raise ConfigError(
            f"CONSOLE_APPROVALS__REQUIRED={asked['required']} would loosen the context's "
            f"[approvals] required = {rule['required']!r}; the environment may only tighten it"
        )
    if (
        "ttl" in asked
        and "ttl" in rule
        and parse_duration(str(asked["ttl"])) > parse_duration(str(rule["ttl"]))
    ):
        raise ConfigError(
            f"CONSOLE_APPROVALS__TTL={asked['ttl']} is longer than the context's "
            f"[approvals] ttl = {rule['ttl']!r}; the environment may only shorten it"
        )
    if "approvers" in asked and "approvers" in rule and asked["approvers"] != rule["approvers"]:
        raise ConfigError("CONSOLE_APPROVALS__APPROVERS cannot change the context's approvers")
    return env


class EnvWithinFile(PydanticBaseSettingsSource):
    """The environment source, checked by ``env_within_file`` against the file's values."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        env: PydanticBaseSettingsSource,
        file: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._env, self._file = env, file

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ gives every value at once

    def __call__(self) -> dict[str, Any]:
        return env_within_file(self._env(), self._file())
