"""Traffic and attacks only ever target loopback: anything else is refused before a packet."""

from __future__ import annotations

import socket
import time

import pytest

from console.config import Settings
from console.errors import LabError
from console.lab.attacks.common import require_loopback_target
from console.lab.attacks.evasion import run_evasion
from console.lab.attacks.extraction import run_extraction
from console.lab.attacks.flood import run_flood
from console.lab.traffic import run_benign


def _with_gateway(url: str) -> Settings:
    base = Settings()
    return base.model_copy(update={"gateway": base.gateway.model_copy(update={"url": url})})


def _non_loopback_ip() -> str | None:
    """This machine's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            ip = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8080",
        "http://192.168.1.10",
        "http://localhost.example.com:8080",
        "http://127.0.0.1.nip.io:8080",
        "http://127.0.0.1@10.0.0.1:8080/",
        "http://[2001:db8::1]:8080",
        "ftp://127.0.0.1/",
        "http://127.0.0.1:notaport/",
    ],
)
def test_non_loopback_urls_are_refused(url: str) -> None:
    with pytest.raises(LabError):
        require_loopback_target(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:18080", "http://127.3.2.1:1", "http://localhost:80", "http://[::1]:8"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert require_loopback_target(url) == url


async def test_every_run_refuses_a_listening_non_loopback_gateway_without_a_connection() -> None:
    """A real listener on this machine's non-loopback address sees no connection attempt.
    Without such an address, 10.0.0.1: a connection attempt there would take seconds."""
    ip = _non_loopback_ip()
    with socket.socket() as listener:
        if ip is not None:
            listener.bind((ip, 0))
            listener.listen(8)
            listener.setblocking(False)
        url = f"http://{ip}:{listener.getsockname()[1]}" if ip else "http://10.0.0.1:9"
        settings = _with_gateway(url)
        runs = [
            run_benign(settings, 2, 5.0, 1.0, 0),
            run_extraction(settings, "mallory-1", budget=10, duration=1.0),
            run_evasion(settings, "mallory-2", samples=2, duration=1.0),
            run_flood(settings, "mallory-3", budget=10, duration=1.0),
        ]
        for run in runs:
            started = time.monotonic()
            with pytest.raises(LabError, match="not loopback"):
                await run
            assert time.monotonic() - started < 1.0
        if ip is not None:
            with pytest.raises(BlockingIOError):
                listener.accept()  # nothing ever connected
