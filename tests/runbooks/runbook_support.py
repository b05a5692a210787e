"""Helpers for the runbook tests: an isolated console against the shared lab services.

Each test gets its own run dir, audit log and Redis key prefix, so tests can run in parallel
against one Redis, one MLflow and one Alertmanager.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from console.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
AUDIT_KEY = "test-audit-key-" + "x" * 16


@dataclass
class Console:
    """One isolated console: its settings, and the env a CLI subprocess needs."""

    settings: Settings
    env: dict[str, str]
    run_dir: Path

    def reload(self) -> Settings:
        return load_settings()


def _console_env(lab: Any, tmp_path: Path, **extra: str) -> dict[str, str]:
    run_dir = tmp_path / "run"
    env = {
        "CONSOLE_CONFIG": str(lab.config_path),
        "CONSOLE_RUN_DIR": str(run_dir),
        "CONSOLE_REDIS__KEY_PREFIX": f"t{secrets.token_hex(4)}",
        "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": AUDIT_KEY,
        "CONSOLE_OPERATOR": "oncall-tester",
        "CONSOLE_RUNBOOK_DIRS": f'["{REPO / "runbooks"}"]',
        "CONSOLE_LOCKS__LEASE_S": "30",
    }
    env.update(extra)
    return env


def make_console(lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Console:
    env = _console_env(lab, tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return Console(settings=load_settings(), env={**os.environ, **env}, run_dir=tmp_path / "run")


def redis_client(console: Console) -> Any:
    import redis

    return redis.Redis.from_url(console.settings.redis.url, decode_responses=True)


def policy_key(console: Console, kind: str, client: str) -> str:
    return f"{console.settings.redis.key_prefix}:policy:{kind}:{client}"


def lock_keys(console: Console) -> list[str]:
    """Every lease key of this console's prefix."""
    return sorted(redis_client(console).keys(f"{console.settings.redis.key_prefix}:lock:*"))


def audit_records(console: Console) -> list[dict[str, Any]]:
    import json

    path = console.settings.audit_path
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def start_run(console: Console, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """``aml-console runbook run ARGS --yes`` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "console", "runbook", "run", *args, "--yes"],
        env=console.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def wait_for_step(console: Console, step: str, status: str, timeout: float = 30) -> dict[str, Any]:
    """The saved state of the first run whose step ``step`` reaches ``status``."""
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in (console.run_dir / "runs").glob("*/state.json"):
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if any(s["id"] == step and s["status"] == status for s in state["steps"]):
                return dict(state)
        time.sleep(0.05)
    raise AssertionError(f"step {step} never reached {status}")
