"""Who is asking: the client identity a request asserts (``X-Client-Id``, or a pseudonym of
its bearer API key) and the trace it continues. Identities are attacker-chosen: checked
against the policy store's id rules, and the metric labels of the gateway's own refused."""

from __future__ import annotations

from dataclasses import dataclass

from console.adapters.policy import CLIENT_ID
from console.config import Settings
from console.identity import bearer_pseudonym, load_or_create_secret
from console.lab.gateway.client_slots import RESERVED
from console.lab.gateway.protocol import RequestError
from console.lab.gateway.telemetry import new_trace_id


@dataclass(frozen=True)
class Caller:
    """Who asked, from the request headers; ``client`` None when no identity was sent."""

    client: str | None
    trace_id: str
    parent_span_id: str = ""
    upstream_output: str = ""
    """``X-AML-Output`` from the policy endpoint in front (policy decided upstream only)."""


def client_from_headers(
    client_id: str | None, authorization: str | None, pseudonym_secret: bytes
) -> str | None:
    """The pseudonym of a bearer key (the key itself is never stored), else ``X-Client-Id``.
    A key is an identity and wins over a claimed id; a claim shaped like a key's pseudonym
    (``key-...``) would impersonate that key holder, and is refused."""
    if authorization is not None:
        keyed = bearer_pseudonym(authorization, pseudonym_secret)
        if keyed is not None:
            return keyed
    if client_id is not None:
        client_id = client_id.strip()
        if not CLIENT_ID.fullmatch(client_id):
            raise RequestError(
                400,
                "bad_client",
                "X-Client-Id must be 1-128 characters of letters, digits and . _ : @ -, "
                "starting with a letter or digit",
            )
        if client_id in RESERVED:
            raise RequestError(
                400,
                "bad_client",
                f"X-Client-Id {client_id!r} is reserved (a metrics label of the gateway's own)",
            )
        if client_id.lower().startswith("key-"):
            raise RequestError(
                400, "bad_client", "X-Client-Id key-... names an API key holder: send the key"
            )
        return client_id
    return None


def pseudonym_secret(settings: Settings) -> bytes:
    """The deployment's secret for bearer pseudonyms: configured, or the shared file."""
    cfg = settings.gateway
    if cfg.pseudonym_key is not None and cfg.pseudonym_key.get_secret_value():
        return cfg.pseudonym_key.get_secret_value().encode()
    path = cfg.pseudonym_key_file or settings.run_dir / "secrets" / "pseudonym.key"
    return load_or_create_secret(path)


def new_caller(
    client: str | None, traceparent: tuple[str, str] | None, upstream_output: str = ""
) -> Caller:
    if traceparent is not None:
        return Caller(client, traceparent[0], traceparent[1], upstream_output)
    return Caller(client, new_trace_id(), upstream_output=upstream_output)
