"""Who a decision is for: the client id a gateway forwards, or the pseudonym of a bearer key.
Both headers are attacker-chosen, so they are bounded and checked before anything uses them."""

from __future__ import annotations

from collections.abc import Mapping

from console.adapters.policy import CLIENT_ID
from console.config import Settings
from console.errors import ConfigError
from console.identity import bearer_pseudonym, key_pseudonym, load_or_create_secret

MAX_CLIENT_HEADER = 256
"""Longer than any valid id (128) plus spaces; a longer value is refused without a look."""
MAX_KEY_HEADER = 4096


RESERVED_CLAIMS = frozenset({"other", "unknown"})
"""Labels the gateways use for clients of their own: nobody may claim to be them."""
PSEUDONYM_PREFIX = "key-"
"""Ids of the form ``key-<hex>`` name API-key holders; a claimed one would impersonate one."""


def client_of(
    headers: Mapping[str, str], client_header: str, api_key_header: str, secret: bytes
) -> str | None:
    """The client id, or None when there is none that may be used (the caller answers 401).

    An API key is an authenticated identity and wins over a claimed id: a blocked key holder
    who also sends ``X-Client-Id: fresh-1`` is still the key holder. A claimed id is whatever
    the caller says, so it may not take the form of a key's pseudonym or a reserved label.
    ``client_header = ""`` turns claims off (keys only)."""
    credential = headers.get(api_key_header)
    keyed = _key_client(credential, api_key_header, secret) if credential is not None else None
    if keyed is not None:
        return keyed
    claimed = headers.get(client_header) if client_header else None
    if claimed is None or len(claimed) > MAX_CLIENT_HEADER:
        return None
    claimed = claimed.strip()
    if not CLIENT_ID.fullmatch(claimed) or claimed in RESERVED_CLAIMS:
        return None
    return None if claimed.lower().startswith(PSEUDONYM_PREFIX) else claimed


def _key_client(credential: str, api_key_header: str, secret: bytes) -> str | None:
    if len(credential) > MAX_KEY_HEADER:
        return None
    if api_key_header.lower() == "authorization":
        return bearer_pseudonym(credential, secret)
    # A header of its own (X-Api-Key: <key>) carries the key bare, or as a bearer.
    scheme, _, rest = credential.strip().partition(" ")
    key = rest.strip() if scheme.lower() == "bearer" else credential.strip()
    return key_pseudonym(key, secret) if key and key.isprintable() else None


def pseudonym_secret(settings: Settings) -> bytes:
    """``[policy_endpoint] pseudonym_key``, else the file (by default the lab gateway's)."""
    cfg = settings.policy_endpoint
    if cfg.pseudonym_key is not None and cfg.pseudonym_key.get_secret_value():
        return cfg.pseudonym_key.get_secret_value().encode()
    path = cfg.pseudonym_key_file or settings.run_dir / "secrets" / "pseudonym.key"
    try:
        return load_or_create_secret(path)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"[policy_endpoint] pseudonym_key_file {path}: {reason}") from None
