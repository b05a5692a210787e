"""Every error the CLI shows is one line (``error: ...`` on stderr): usage errors of every
command, a config value that no client can use, a blank ``--operator``; and no credential of a
backend URL ever reaches the screen."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer.main
from support import REPO, free_port, run_cli, unavailable
from typer.testing import CliRunner

from console.cli.main import app

SECRET = "hunter2"


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the tree, groups included."""
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


ALL_COMMANDS = list(_commands(typer.main.get_command(app)))


def _invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def _one_error_line(result: Any, code: int = 2) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "╭" not in result.stderr
    return str(lines[0])


def test_the_tree_has_every_command() -> None:
    names = {" ".join(p) for p in ALL_COMMANDS}
    assert {
        "lab up",
        "lab attack poisoning",
        "runbook run",
        "audit verify",
        "drill run",
        "demo",
        "replay",
        "tui",
    } <= names


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "(root)")
def test_an_unknown_option_is_one_line_with_exit_2_for_every_command(
    path: tuple[str, ...],
) -> None:
    line = _one_error_line(_invoke(*path, "--no-such-option"))
    assert "No such option: --no-such-option" in line
    assert f"aml-console {' '.join(path)}".strip() + " --help" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["runbook", "show"], "Missing argument 'name'"),
        (["audit", "show"], "Missing argument"),
        (["lab", "attack", "flood"], "Missing option '--client'"),
        (["lab", "up", "--metrics", "graphite"], "'graphite' is not one of"),
        (["lab", "status", "-o", "xml"], "'xml' is not one of"),
        (["drill", "run", "extraction", "--responder", "robot"], "'robot' is not one of"),
        (["lab", "attack", "flood", "--client", "m", "--budget", "0"], "--budget"),
        (["lab", "attack", "flood", "--client", "m", "--budget", "many"], "valid integer"),
        (["lab", "nope"], "No such command 'nope'"),
        (["runbook", "run"], "Missing argument"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], expected: str) -> None:
    line = _one_error_line(_invoke(*args))
    assert expected in line, line


def test_a_group_without_a_command_still_shows_its_help() -> None:
    result = _invoke("lab")
    assert result.exit_code == 2
    assert "Usage" in result.stdout + result.stderr and "attack" in result.stdout + result.stderr
    assert "error:" not in result.stderr


@pytest.mark.parametrize("operator", ["", "   "])
def test_a_blank_operator_is_refused_not_ignored(operator: str) -> None:
    line = _one_error_line(_invoke("--operator", operator, "runbook", "list"))
    assert "--operator" in line


def _isolated_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """os.environ without CONSOLE_* plus a private run dir; the repo's configs/lab.toml."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSOLE_")}
    env.update(
        CONSOLE_RUN_DIR=str(tmp_path / "run"),
        CONSOLE_AUDIT__HMAC_KEY="cli-errors-test-key-" + "x" * 16,
        CONSOLE_REDIS__TIMEOUT_S="0.5",
        CONSOLE_MLFLOW__TIMEOUT_S="0.5",
        CONSOLE_ALERTMANAGER__TIMEOUT_S="0.5",
        CONSOLE_PROMETHEUS__TIMEOUT_S="0.5",
    )
    env.update(overrides)
    return env


BLOCK = [
    "runbook",
    "run",
    "block-client",
    "-p",
    "client=x",
    "-p",
    "ttl=1m",
    "-p",
    "reason=cli errors test",
    "--dry-run",
]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redis.url", "notaurl"),
        ("redis.url", "redis://127.0.0.1:notaport/0"),
        ("mlflow.url", "notaurl"),
        ("prometheus.url", "ftp://127.0.0.1:9090"),
    ],
)
def test_a_url_no_client_can_use_names_its_field(tmp_path: Path, field: str, value: str) -> None:
    variable = "CONSOLE_" + field.upper().replace(".", "__")
    env = _isolated_env(tmp_path, **{variable: value})
    for args in (["runbook", "list"], BLOCK):
        proc = run_cli(args, env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert f"{field}: " in lines[0] and "internal error" not in lines[0], lines[0]


def test_a_redis_password_never_reaches_the_screen(tmp_path: Path) -> None:
    """An unreachable Redis whose URL carries a password: the error names Redis, not the
    password."""
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    env = _isolated_env(tmp_path, CONSOLE_REDIS__URL=url)
    proc = run_cli(BLOCK, env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "redis" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert SECRET not in proc.stdout + proc.stderr


ROLLBACK = ["runbook", "run", "rollback-model", "-p", "model=digits", "--dry-run"]
SILENCE = ["runbook", "run", "silence-alert", "-p", "alertname=X", "-p", "duration=1h", "--dry-run"]


@pytest.mark.parametrize(
    ("variable", "args", "backend"),
    [
        ("CONSOLE_MLFLOW__URL", ROLLBACK, "mlflow"),
        ("CONSOLE_ALERTMANAGER__URL", SILENCE, "alertmanager"),
    ],
)
def test_http_userinfo_never_reaches_the_screen(
    tmp_path: Path, variable: str, args: list[str], backend: str
) -> None:
    url = f"http://oncall:{SECRET}@127.0.0.1:{free_port()}"
    proc = run_cli(args, _isolated_env(tmp_path, **{variable: url}))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert backend in proc.stderr and "cannot connect" in proc.stderr
    assert "***@127.0.0.1" in proc.stderr  # the URL is still shown, without its userinfo
    assert SECRET not in proc.stdout + proc.stderr


def _one_sample(samples: Path, client: str) -> None:
    now = datetime.now(UTC)
    row = {
        "sample_id": "s1",
        "time": now.isoformat(),
        "client": client,
        "model": "digits",
        "version": "2",
        "detector_score": 0.1,
        "extraction_score": 0.0,
        "prediction": 1,
        "confidence": 0.9,
        "flagged": False,
        "trace_id": "0" * 32,
        "input_sha256": "0" * 64,
        "input": [0.0] * 64,
    }
    day = samples / f"dt={now:%Y-%m-%d}"
    day.mkdir(parents=True)
    (day / "samples-1.jsonl").write_text(json.dumps(row) + "\n")


def test_replay_endpoint_userinfo_never_reaches_the_screen(lab: Any, tmp_path: Path) -> None:
    """Replay through a V2 endpoint whose URL carries credentials (the session lab's MLflow
    resolves the versions; the endpoint's port is closed)."""
    _one_sample(tmp_path / "samples", "cli-errors")
    env = {
        **lab.env,
        "CONSOLE_RUN_DIR": str(tmp_path / "run"),
        "CONSOLE_SAMPLES__PATH": str(tmp_path / "samples"),
    }
    url = f"http://oncall:{SECRET}@127.0.0.1:{free_port()}"
    proc = run_cli(["replay", "--client", "cli-errors", "--endpoint", url], env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cannot connect" in proc.stderr and "***@127.0.0.1" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


def test_the_console_script_and_python_m_agree(tmp_path: Path) -> None:
    """``python -m console`` (what the tests run) ends errors like the ``aml-console`` script."""
    import shutil
    import subprocess

    script = shutil.which("aml-console")
    if script is None:
        unavailable("aml-console is not on PATH (pip install -e .)")
    env = _isolated_env(tmp_path, CONSOLE_REDIS__URL="notaurl")
    proc = subprocess.run(
        [script, "runbook", "list"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and "redis.url: " in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
