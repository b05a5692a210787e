"""Helpers for the incident tests: an isolated console (own run dir, audit log, operator) and
the CLI in-process. Import as ``from incident_support import ...``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from support import free_port
from typer.testing import CliRunner, Result

from console.cli.main import app
from console.config import Settings, load_settings

AUDIT_KEY = "incident-test-audit-key-" + "x" * 16


def console_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A console with its own state, every backend on a closed port unless ``extra`` says
    otherwise (an export then says what it could not read)."""
    run_dir = tmp_path / "run"
    closed = f"http://127.0.0.1:{free_port()}"
    return {
        "CONSOLE_RUN_DIR": str(run_dir),
        "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": AUDIT_KEY,
        "CONSOLE_OPERATOR": "alice",
        "CONSOLE_PROMETHEUS__URL": closed,
        "CONSOLE_ALERTMANAGER__URL": closed,
        "CONSOLE_PROMETHEUS__TIMEOUT_S": "2",
        **extra,
    }


def use_console(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: Mapping[str, str] | None = None
) -> Settings:
    for key, value in (env or console_env(tmp_path)).items():
        monkeypatch.setenv(key, value)
    return load_settings()


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def audit_lines(settings: Settings) -> list[dict[str, Any]]:
    path = settings.audit_path
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def opened_id(result: Result) -> str:
    """The id ``incident open -o json`` printed."""
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["id"])


def stack_cli(stack: Any, *args: str) -> Any:
    """``aml-console ARGS`` on a lab stack (``stack.env``); it must succeed."""
    from support import run_cli

    result = run_cli(list(args), stack.env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result
