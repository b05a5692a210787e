"""Serve the endpoint with uvicorn on a socket bound here, so a bad or taken address is one
ConfigError line before anything starts."""

from __future__ import annotations

import socket
from collections.abc import Callable

from console.config import Settings
from console.errors import ConfigError

LISTEN_EXAMPLE = "127.0.0.1:18090"


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"listen address {text[:80]!r} is not host:port with a port of 1-65535 "
            f"(e.g. {LISTEN_EXAMPLE})"
        )
    return host, int(port)


def bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"cannot listen on {host[:80]}:{port}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve(
    settings: Settings, listen: str, *, on_listening: Callable[[str], None] | None = None
) -> None:
    """Serve until interrupted (SIGINT/SIGTERM end it gracefully); ``on_listening`` gets the
    decision URL once the socket is bound."""
    import uvicorn

    from console.policy_endpoint.app import create_app

    host, port = parse_listen(listen)
    app = create_app(settings)  # ConfigError here, before the port is taken
    sock = bind(host, port)
    config = uvicorn.Config(
        app,
        log_level="info",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    if on_listening is not None:
        shown = f"[{host}]" if ":" in host else host
        on_listening(f"http://{shown}:{port}/v1/decision")
    server.run(sockets=[sock])
