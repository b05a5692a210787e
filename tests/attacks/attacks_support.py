"""Helpers for the attack tests: an isolated gateway (own port, run dir, Redis key prefix)
against the session lab's Redis and MLflow, and readers of its metrics, spans and samples."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support import REPO, free_port

from console.config import Settings, load_settings

AUDIT_KEY = "attacks-test-audit-key-" + "x" * 16


@dataclass(frozen=True)
class AttackLab:
    settings: Settings
    env: dict[str, str]
    """os.environ plus this gateway's CONSOLE_* variables (for the CLI: runbooks, attacks)."""
    model: str
    """Served model the traffic, extraction, evasion and flood tests use."""
    poison_model: str
    """Served model the poisoning test promotes a backdoored version of."""

    @property
    def url(self) -> str:
        return self.settings.gateway.url


def attack_env(config_path: Path, run_dir: Path, models: list[str]) -> dict[str, str]:
    return {
        "CONSOLE_CONFIG": str(config_path),
        "CONSOLE_RUN_DIR": str(run_dir),
        "CONSOLE_REDIS__KEY_PREFIX": f"atk{secrets.token_hex(4)}",
        "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": AUDIT_KEY,
        "CONSOLE_OPERATOR": "attack-tester",
        "CONSOLE_RUNBOOK_DIRS": json.dumps([str(REPO / "runbooks")]),
        "CONSOLE_TRACES__PATH": str(run_dir / "traces"),
        "CONSOLE_SAMPLES__PATH": str(run_dir / "samples"),
        "CONSOLE_GATEWAY__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_MODELS__SERVED": json.dumps(models),
        "CONSOLE_GATEWAY__ALIAS_POLL_S": "0.3",
        "CONSOLE_GATEWAY__SAMPLE_FRACTION": "0",
    }


def settings_from(env: dict[str, str], monkeypatch: Any) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


def metric_values(url: str, name: str, model: str) -> dict[str, float]:
    """``client -> value`` of a gauge/counter with a ``client`` label, for ``model``."""
    text = httpx.get(f"{url}/metrics", timeout=5.0, trust_env=False).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(name + "{") or f'model="{model}"' not in line:
            continue
        client = re.search(r'client="([^"]*)"', line)
        if client:
            found[client.group(1)] = found.get(client.group(1), 0.0) + float(line.split()[-1])
    return found


def read_jsonl(directory: Path, pattern: str) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(directory.glob(pattern)):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


def trace_ids(traces_dir: Path) -> set[str]:
    ids = set()
    for record in read_jsonl(traces_dir, "traces-*.jsonl"):
        for rs in record["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                ids.update(span["traceId"] for span in ss["spans"])
    return ids


def wait_until(check: Any, timeout_s: float, interval_s: float = 0.05) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return bool(check())


class Forwarder:
    """A TCP port-forward on loopback to ``target_port``, as ``kubectl port-forward`` or
    ``ssh -L`` would put a remote service there. ``connections`` counts what it accepted."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self._server.accept()
            except OSError:
                return  # closed
            self.connections += 1
            far = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((near, far), (far, near)):
                thread = threading.Thread(target=_pump, args=(a, b), daemon=True)
                thread.start()
                self._threads.append(thread)

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
