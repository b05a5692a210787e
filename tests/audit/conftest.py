"""Fixtures for the audit tests: real logs on disk, a real redis-server for the mirror."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from audit_helpers import KEY, event
from support import free_port

from console.audit import AuditLog, AuditRecord


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Default witnesses go under $XDG_STATE_HOME: a private one per test, never ~/.local."""
    home = tmp_path / "xdg-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "audit.jsonl"


@pytest.fixture
def audit_log(log_path: Path) -> AuditLog:
    return AuditLog(log_path, KEY)


@pytest.fixture
def filled(audit_log: AuditLog) -> Callable[[int], list[AuditRecord]]:
    """Append n complete step pairs (intent + outcome): 2 records per step."""

    def fill(records: int = 10) -> list[AuditRecord]:
        out = []
        for i in range(records):
            kind = "step-intent" if i % 2 == 0 else "step-outcome"
            out.append(audit_log.append(event(kind, step=f"s{i // 2}")))
        return out

    return fill


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server for the mirror tests (no persistence), stopped afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A TCP port that accepts connections in the kernel but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])
