"""Helpers shared by tests (not fixtures): the lab handle, test configs, running the CLI.

Import as ``from support import LabHandle, run_cli`` (``tests/`` is on ``sys.path``: it has no
``__init__.py``, like every test directory here).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from console.config import Settings

REPO = Path(__file__).resolve().parent.parent
TEST_RUN_DIR = REPO / ".aml-test"
"""Run dir of the session lab, shared by xdist workers. Stop its services with
``aml-console --config .aml-test/config.toml lab down``."""

TEST_PORTS = {"redis": 26379, "mlflow": 25000, "alertmanager": 29093, "prometheus": 29090}
SESSION_SERVICES = ("redis", "mlflow", "alertmanager")


@dataclass(frozen=True)
class LabHandle:
    """The running test lab. ``env`` is for subprocesses: os.environ plus CONSOLE_CONFIG."""

    settings: Settings
    config_path: Path
    run_dir: Path
    env: dict[str, str]


def lab_config(run_dir: Path, ports: Mapping[str, int], *, services: Sequence[str]) -> str:
    """TOML of a lab config: everything under ``run_dir``, services on the given ports."""
    services_list = ", ".join(f'"{s}"' for s in services)
    return _lab_config(run_dir, ports, services_list) + _signing_keys(run_dir)


def _signing_keys(run_dir: Path) -> str:
    """The session lab's model signing keys, named explicitly: gateways, replays and attacks
    that run with a run dir of their own still verify (and the lab's seeding signs) with the
    pair its seeding made under ``.aml-test/secrets``. Other labs keep the default (the pair
    under their own run dir, when their seeding made one)."""
    if run_dir != TEST_RUN_DIR:
        return ""
    secrets = run_dir / "secrets"
    return f"""
[models]
signing_public_keys = ["{secrets / "model-signing.pub"}"]
signing_key = "{secrets / "model-signing.key"}"
"""


def _lab_config(run_dir: Path, ports: Mapping[str, int], services_list: str) -> str:
    return f"""\
# Written by the tests' lab fixture.
environment = "test"
run_dir = "{run_dir}"
runbook_dirs = ["{REPO / "runbooks"}"]

[redis]
url = "redis://127.0.0.1:{ports["redis"]}/0"

[mlflow]
url = "http://127.0.0.1:{ports["mlflow"]}"

[alertmanager]
url = "http://127.0.0.1:{ports["alertmanager"]}"

[prometheus]
url = "http://127.0.0.1:{ports["prometheus"]}"

[audit]
hmac_key_file = "{run_dir / "secrets" / "audit.key"}"

[robustness]
samples = 50
budget = 1000

[lab]
services = [{services_list}]
seed_model = "digits"
"""


def write_config(path: Path, text: str) -> None:
    """Write atomically: several xdist workers write the same file at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def cli_env(config_path: Path) -> dict[str, str]:
    """os.environ without CONSOLE_* overrides, plus CONSOLE_CONFIG=config_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSOLE_")}
    env["CONSOLE_CONFIG"] = str(config_path)
    return env


def run_cli(
    args: Sequence[str], env: Mapping[str, str] | None = None, *, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m console <args>`` from the repo root; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        env=dict(env) if env is not None else None,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


FREE_PORT_RANGE = (20000, 32000)
"""Where ``free_port`` picks: below Linux's ephemeral range (32768-60999), from which every
outgoing connection takes its source port. A port picked there (the kernel's ``bind(0)``) can be
taken by some client's connection before the service binds it ("address already in use")."""
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for labs that must not touch the session lab).

    Each xdist worker picks from its own slice of ``FREE_PORT_RANGE`` and never hands a port
    out twice, so two workers (or two stacks of one worker) never race for the same port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    low, high = FREE_PORT_RANGE
    span = (high - low) // count
    start = low + (index % count) * span
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    reserved = set(TEST_PORTS.values())
    for _ in range(500):
        port = start + rng.randrange(span)
        if port in _handed_out or port in reserved:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {start}-{start + span} after 500 tries")


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose real service cannot run here; under CI=true fail it instead."""
    if under_ci():
        pytest.fail(f"lab service unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"lab service unavailable: {reason}")
