"""``[policy_endpoint]``: the policy decision service (``aml-console policy serve``) that NGINX
``auth_request``, Envoy ``ext_authz`` and Traefik ``forwardAuth`` ask before they proxy; and
``[acl]``: who may run which runbooks in this context (``console/acl.py``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from console.config_fields import Section

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
