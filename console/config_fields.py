"""Field types shared by the config sections: URLs checked where they are read, and the
section base that refuses unknown keys."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict

from console.urls import redact_url


def _checked_url(value: str, schemes: tuple[str, ...], *, host: bool) -> str:
    """``value`` if a client can use it as a URL of one of ``schemes``; else a ValueError saying
    why (the URL quoted without its credentials), so a bad value is a config error naming its
    field rather than a client's exception later."""
    shown = repr(redact_url(value)[:120])
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:  # a port that is not a number, a broken [IPv6] host
        raise ValueError(f"{shown} is not a valid URL ({exc})") from None
    if parts.scheme not in schemes or (host and not parts.hostname):
        names = [f"{s}://" for s in schemes]
        wanted = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        article = "an" if schemes[0][0] in "aeioh" else "a"
        where = " with a host" if host else ""
        raise ValueError(f"must be {article} {wanted} URL{where}, not {shown}")
    if port == 0:
        raise ValueError(f"{shown} has port 0")
    return value


def _http_url(value: str) -> str:
    return _checked_url(value, ("http", "https"), host=True)


def _redis_url(value: str) -> str:
    _checked_url(value, ("redis", "rediss", "unix"), host=False)
    options = {name.lower() for name in parse_qs(urlsplit(value).query)}
    if any(name.startswith("ssl") for name in options):
        # redis-py reads ssl_cert_reqs=none from the URL and stops checking the certificate,
        # silently: TLS options go in [redis] tls_config, where skipping is loud.
        raise ValueError("TLS options in the URL are refused (e.g. ssl_cert_reqs): use tls_config")
    database = urlsplit(value).path.strip("/")
    if not value.startswith("unix:") and database and not database.isdigit():
        raise ValueError(f"database {database[:40]!r} is not a number (redis://host:port/0)")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""An http(s) URL with a host (a backend's base URL)."""
RedisUrl = Annotated[str, AfterValidator(_redis_url)]
"""A URL redis-py accepts: redis://, rediss:// or unix://."""


class Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")
