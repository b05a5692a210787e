"""Read-only mode (``--read-only``, ``CONSOLE_READ_ONLY=1``, ``read_only`` in the config)
refuses every command that writes to a backend: ``lab up``/``down``, ``lab attack *``, ``lab
traffic``, ``demo``, ``drill run``; one line on stderr, exit 1, nothing changed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import LabHandle
from typer.testing import CliRunner

from console.cli.main import app
from console.lab.seed import SeededModel, describe_model

Way = Callable[[LabHandle, Path], tuple[list[str], dict[str, str]]]


def by_flag(lab: LabHandle, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    return ["--read-only"], dict(lab.env)


def by_environment(lab: LabHandle, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    return [], {**lab.env, "CONSOLE_READ_ONLY": "1"}


def by_config_file(lab: LabHandle, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    config = tmp_path / "read-only.toml"
    config.write_text("read_only = true\n" + lab.config_path.read_text())
    return [], {**lab.env, "CONSOLE_CONFIG": str(config)}


WAYS = [by_flag, by_environment, by_config_file]


def cli(args: list[str], env: dict[str, str]) -> Any:
    return CliRunner().invoke(app, args, env=env)


def refused(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: read-only mode: "), result.stderr
    return str(lines[0])


@pytest.mark.parametrize("way", WAYS, ids=lambda w: w.__name__)
def test_read_only_refuses_poisoning_and_the_registry_is_untouched(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path, way: Way
) -> None:
    """Poisoning registers a version in MLflow and moves its aliases: refused before any of
    it, in each of the three ways of asking for read-only mode."""
    flags, env = way(lab, tmp_path)
    env["CONSOLE_RUN_DIR"] = str(tmp_path / "run")
    args = [
        *flags,
        "lab",
        "attack",
        "poisoning",
        "--client",
        "mallory-ro",
        "--model",
        seeded_model.name,
    ]
    assert "lab attack poisoning" in refused(cli(args, env))
    after = describe_model(lab.settings.mlflow.url, seeded_model.name)
    assert after is not None
    assert [v.version for v in after.versions] == [v.version for v in seeded_model.versions]
    assert (after.champion, after.previous) == (seeded_model.champion, seeded_model.previous)
    assert not (tmp_path / "run" / "lab" / "attacks").exists()  # not even a state file


@pytest.mark.parametrize(
    "args",
    [
        ["lab", "attack", "extraction", "--client", "m", "--budget", "5"],
        ["lab", "attack", "evasion", "--client", "m", "--samples", "1"],
        ["lab", "attack", "flood", "--client", "m", "--budget", "5"],
        ["lab", "traffic", "--duration", "1"],
        ["drill", "run", "extraction", "--responder", "human"],
        ["drill", "run", "extraction", "--responder", "auto"],
    ],
    ids=" ".join,
)
def test_read_only_refuses_every_lab_write_before_anything(
    lab: LabHandle, tmp_path: Path, args: list[str]
) -> None:
    env = {**lab.env, "CONSOLE_RUN_DIR": str(tmp_path / "run")}
    line = refused(cli(["--read-only", *args], env))
    assert "writes to the lab's backends" in line
    assert not (tmp_path / "run" / "lab").exists()  # no record, no service, no lock


def _status(env: dict[str, str]) -> dict[str, str]:
    result = cli(["lab", "status", "-o", "json"], env)
    assert result.exit_code == 0, result.stderr
    return {row["name"]: row["state"] for row in json.loads(result.stdout)}


def test_read_only_refuses_lab_up_and_lab_down(iso_lab: LabHandle, tmp_path: Path) -> None:
    env = iso_lab.env
    refused(cli(["--read-only", "lab", "up", "-s", "redis"], env))
    assert _status(env)["redis"] == "stopped"

    started = cli(["lab", "up", "-s", "redis", "-o", "json"], env)
    assert started.exit_code == 0, started.stderr
    for way in WAYS:
        flags, way_env = way(iso_lab, tmp_path)
        assert "lab down" in refused(cli([*flags, "lab", "down"], way_env))
        assert "lab up" in refused(cli([*flags, "lab", "up", "-s", "redis"], way_env))
        assert _status(env)["redis"] == "running"


def test_read_only_refuses_demo_in_a_terminal(lab: LabHandle, tmp_path: Path) -> None:
    """`demo` (which needs a terminal: a pseudo-terminal here) brings the lab up and schedules
    an attack: refused before either."""
    import os
    import pty
    import subprocess
    import sys

    from support import REPO

    env = {**lab.env, "CONSOLE_RUN_DIR": str(tmp_path / "run")}
    terminal, side = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "console", "--read-only", "demo"],
            stdin=side,
            stdout=side,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(side)
        os.close(terminal)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: read-only mode: lab up "), lines
    assert not (tmp_path / "run" / "lab").exists()
