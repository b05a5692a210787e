"""Helpers for the runbook tests: an isolated console against the shared lab services.

Each test gets its own run dir, audit log and Redis key prefix, so tests can run in parallel
against one Redis, one MLflow and one Alertmanager.
"""

from __future__ import annotations

import os
import secrets
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
