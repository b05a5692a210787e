"""Readiness probes: does a service answer its own protocol on 127.0.0.1?

Plain sockets and ``http.client``: no proxy from the environment can get in the way, and no TLS
context is built per probe (httpx builds one per client, ~0.1 s).
"""

from __future__ import annotations

import http.client
import socket


def redis_ping(port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def http_ok(port: int, path: str, timeout_s: float) -> bool:
    """GET ``http://127.0.0.1:<port><path>`` answers 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
