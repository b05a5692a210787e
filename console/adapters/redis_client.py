"""Redis clients built from ``[redis]``, and redis-py's failures as ConsoleErrors.

Every Redis client of the console, the audit mirror and the lab gateway is built here, so a
username, password (or password file) and TLS (``rediss://``, a CA, a client certificate) apply
to all of them alike. Credentials in the URL (``redis://user:pw@host``) keep working; the URL
redis-py is given wins over the keyword arguments, so config validation refuses the two at once.

Failures say where and what: a refused password is "redis at rediss://host:port/0 refused the
credentials (WRONGPASS)", a ``BackendAuthError`` with status 401 (403 for a missing ACL
permission, NOPERM), as an HTTP backend would answer; a TLS failure names the certificate
problem. The URL shown is rebuilt
from the connection's host, port and database: it never carries a credential.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from redis import exceptions as redis_errors

from console import __version__
from console.config import RedisSection
from console.errors import (
    AdapterError,
    BackendAuthError,
    BackendResponseError,
    BackendUnavailable,
    ConfigError,
)
from console.urls import redact_url, redact_urls_in

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    import redis
    import redis.asyncio as aioredis

T = TypeVar("T")
log = logging.getLogger(__name__)
_warned_insecure: set[str] = set()
_WrongAuthArgs = redis_errors.AuthenticationWrongNumberOfArgsError
AUTH_CODES = ("WRONGPASS", "NOAUTH")


@dataclass(frozen=True)
class RedisEndpoint:
    """Where a client connects, as it may be shown, and how (for the errors' hints)."""

    url: str
    tls: bool = False
    client_cert: bool = False


def client_options(cfg: RedisSection, *, timeout_s: float | None = None) -> dict[str, Any]:
    """Keyword arguments of redis-py's ``from_url`` (sync or asyncio) for ``cfg``: timeouts,
    credentials and, for a ``rediss://`` URL, the TLS settings. Raises ConfigError when the
    password file, the CA or the client certificate cannot be read."""
    timeout = cfg.timeout_s if timeout_s is None else timeout_s
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if cfg.username is not None:
        options["username"] = cfg.username
    password = cfg.password_value()
    if password is not None:
        options["password"] = password
    tls = cfg.tls_config
    if cfg.url.startswith("rediss:") and tls is not None:
        _check_tls_files(tls.ca_file, tls.cert_file, tls.key_file)
        if tls.ca_file is not None:
            options["ssl_ca_certs"] = str(tls.ca_file)
        if tls.cert_file is not None:
            options["ssl_certfile"] = str(tls.cert_file)
        if tls.key_file is not None:
            options["ssl_keyfile"] = str(tls.key_file)
        if tls.insecure_skip_verify:
            options["ssl_cert_reqs"] = "none"
            options["ssl_check_hostname"] = False
            where = redact_url(cfg.url)
            if where not in _warned_insecure:
                _warned_insecure.add(where)
                log.warning(
                    "WARNING: TLS certificate checks are OFF for redis at %s "
                    "(tls_config.insecure_skip_verify): anyone on the path can read and change "
                    "its traffic and credentials",
                    where,
                )
    return options


def _check_tls_files(ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> None:
    """Load the files as redis-py will, so a missing or broken one is a ConfigError naming
    it rather than a connection failure later."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    option, path = "ca_file", ca_file
    try:
        if ca_file is not None:
            context.load_verify_locations(cafile=str(ca_file))
        if cert_file is not None:
            option, path = "cert_file/key_file", cert_file
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"redis tls_config.{option} {path}: cannot be loaded ({reason})"
        ) from None


def async_client(
    cfg: RedisSection, *, timeout_s: float | None = None, decode_responses: bool = True
) -> aioredis.Redis:
    """An asyncio client for ``cfg`` (no connection is opened until the first command)."""
    import redis.asyncio as aioredis
    from redis.driver_info import DriverInfo

    return aioredis.Redis.from_url(
        cfg.url,
        decode_responses=decode_responses,
        # Named explicitly: shows in CLIENT LIST, and spares redis-py a package metadata scan
        # (~10 ms) on every new connection.
        driver_info=DriverInfo(name="aml-console", lib_version=__version__),
        **client_options(cfg, timeout_s=timeout_s),
    )


def sync_client(cfg: RedisSection, *, timeout_s: float | None = None, **extra: Any) -> redis.Redis:
    """A blocking client for ``cfg``; ``extra`` goes to redis-py as is (retry policy...)."""
    import redis

    return redis.Redis.from_url(cfg.url, **client_options(cfg, timeout_s=timeout_s), **extra)


def endpoint_of(client: object) -> RedisEndpoint:
    """Where a redis-py client (sync or asyncio) connects; ``redis`` for a stand-in."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return RedisEndpoint("redis")
    if "path" in kwargs:
        return RedisEndpoint(f"unix://{kwargs['path']}")
    tls = "SSL" in getattr(getattr(pool, "connection_class", None), "__name__", "")
    host = str(kwargs.get("host", "localhost"))
    shown_host = f"[{host}]" if ":" in host else host
    scheme = "rediss" if tls else "redis"
    url = f"{scheme}://{shown_host}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    return RedisEndpoint(url, tls, client_cert=kwargs.get("ssl_certfile") is not None)


async def redis_call(
    call: Callable[[], Awaitable[T]], what: str, endpoint: RedisEndpoint | None = None
) -> T:
    """Await a Redis command, its failures translated into adapter errors."""
    try:
        return await call()
    except (redis_errors.RedisError, OSError) as exc:
        raise redis_failure(exc, what, endpoint) from None


def redis_failure(
    exc: BaseException, what: str, endpoint: RedisEndpoint | None = None
) -> AdapterError:
    """The ConsoleError a redis-py (or socket) failure during ``what`` is shown as."""
    where = endpoint or RedisEndpoint("redis")
    at = f"redis at {where.url}" if where.url != "redis" else "redis"
    code = getattr(exc, "status_code", None)
    if isinstance(exc, redis_errors.NoPermissionError):
        return BackendAuthError(
            f"{at} refused to {what} (NOPERM: {_first_line(exc)}): the ACL user needs access "
            "to the keys under [redis] key_prefix",
            "redis",
            403,
        )
    if isinstance(exc, redis_errors.AuthenticationError | _WrongAuthArgs):
        shown = code if code in AUTH_CODES else _first_line(exc)
        hint = ": it requires a password and none was given" if code == "NOAUTH" else ""
        return BackendAuthError(
            f"{at} refused the credentials ({shown}{hint}); check [redis] username and "
            "password or password_file",
            "redis",
            401,
        )
    tls_problem = _tls_problem(exc, where)
    if tls_problem is not None:
        error = BackendUnavailable(f"{at}: TLS failed: {tls_problem}", "redis")
        error.retryable = False  # the same certificate fails the same way again
        return error
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError | OSError):
        hint = ""
        if not where.tls and _reset(exc):
            hint = " (a server that only speaks TLS does this: use a rediss:// URL)"
        # redis-py's text names the host and port already.
        return BackendUnavailable(f"redis: {what}: {_first_line(exc)}{hint}", "redis")
    if isinstance(exc, redis_errors.ResponseError) and str(exc).startswith("NOPERM"):
        return BackendAuthError(f"{at} refused to {what} ({_first_line(exc)})", "redis", 403)
    return BackendResponseError(f"redis: {what}: {_first_line(exc)}", "redis")


def _tls_problem(exc: BaseException, where: RedisEndpoint) -> str | None:
    """The certificate problem behind ``exc``, with what to do about it; None if not TLS."""
    cause = _ssl_error(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        problem = f"certificate verify failed: {cause.verify_message}"
        if cause.verify_code in (18, 19, 20, 21):  # self-signed / unknown issuer
            return f"{problem} (set [redis] tls_config.ca_file to the CA of the server)"
        return problem
    if isinstance(cause, ssl.SSLError):
        reason = cause.reason or _first_line(cause)
        if "CERTIFICATE_REQUIRED" in reason:
            return (
                f"the server requires a client certificate ({reason}): set [redis] "
                "tls_config.cert_file and key_file"
            )
        if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
            return f"the server does not speak TLS on this port ({reason}): use redis://?"
        return reason
    if where.tls and not where.client_cert and _reset(exc):
        return (
            "the server closed the connection during the handshake; if it requires a client "
            "certificate, set [redis] tls_config.cert_file and key_file"
        )
    return None


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` redis-py wrapped (it raises its own, the ssl one as context)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reset(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, ConnectionResetError | ssl.SSLEOFError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return "Connection reset by peer" in text or "Connection closed by server" in text


def _first_line(exc: BaseException) -> str:
    """The exception's first line, any URL in it (redis-py may quote the one it was given)
    without its password."""
    text = str(exc) or type(exc).__name__
    return redact_urls_in(text.splitlines()[0][:200])


__all__ = [
    "RedisEndpoint",
    "async_client",
    "client_options",
    "endpoint_of",
    "redis_call",
    "redis_failure",
    "sync_client",
]
