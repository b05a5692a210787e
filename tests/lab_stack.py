"""An isolated lab stack for end-to-end tests: the session lab's Redis and MLflow, and its own
Prometheus, Alertmanager, gateway and benign traffic on free ports, started by the launcher."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import REPO, LabHandle, free_port, unavailable

from console.config import Settings, load_settings
from console.errors import ConsoleError
from console.lab import services

RULES_DIR = REPO / "configs" / "prometheus"
STACK = ("alertmanager", "prometheus", "gateway", "traffic")


@dataclass(frozen=True)
class LabStack:
    settings: Settings
    env: dict[str, str]
    """os.environ plus this stack's CONSOLE_* variables (for the CLI)."""
    model: str


def stack_env(lab: LabHandle, run_dir: Path, model: str, clients: int) -> dict[str, str]:
    return {
        **lab.env,
        "CONSOLE_RUN_DIR": str(run_dir),
        "CONSOLE_REDIS__KEY_PREFIX": f"stk{secrets.token_hex(4)}",
        "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": "stack-test-audit-key-" + "x" * 16,
        "CONSOLE_OPERATOR": "stack-tester",
        "CONSOLE_RUNBOOK_DIRS": json.dumps([str(REPO / "runbooks")]),
        "CONSOLE_ALERTMANAGER__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_PROMETHEUS__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_TRACES__PATH": str(run_dir / "traces"),
        "CONSOLE_SAMPLES__PATH": str(run_dir / "samples"),
        "CONSOLE_GATEWAY__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_MODELS__SERVED": json.dumps([model]),
        "CONSOLE_GATEWAY__SAMPLE_FRACTION": "0",
        "CONSOLE_TRAFFIC__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_TRAFFIC__CLIENTS": str(clients),
        "CONSOLE_TRAFFIC__RATE": "2",
    }


@contextmanager
def lab_stack(
    lab: LabHandle,
    model: str,
    run_dir: Path,
    clients: int = 4,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[LabStack]:
    """``extra_env``: more CONSOLE_* settings of this stack (e.g. the gateway's)."""
    env = {**stack_env(lab, run_dir, model, clients), **(extra_env or {})}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = load_settings()
    try:
        services.up(settings, STACK, seed=False, rules_dir=RULES_DIR)
    except ConsoleError as exc:
        services.down(settings, STACK)
        unavailable(str(exc))
    try:
        yield LabStack(settings, env, model)
    finally:
        services.down(settings, STACK)
