"""What the launcher leaves on disk is private whatever the umask (folders 0700, files 0600),
and what it shows (``lab status``, its errors) never carries a URL's credentials."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support import LabHandle, free_port
from typer.testing import CliRunner

from console.cli.main import app
from console.lab.specs import service_port

SECRET = "hunter2"


def cli(args: list[str], env: dict[str, str]) -> Any:
    return CliRunner().invoke(app, args, env=env)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_lab_state_and_secrets_are_private_whatever_the_umask(iso_lab: LabHandle) -> None:
    """Under umask 0, `lab up` makes the run and lab dirs, the service's home and data 0700,
    its pid file, log, lock and the generated audit key 0600, and the key's folder 0700. The
    service itself runs with umask 077: what it creates is private too."""
    with umask(0):
        result = cli(["lab", "up", "-s", "redis,prometheus"], iso_lab.env)
    assert result.exit_code == 0, result.stderr
    lab_dir = iso_lab.settings.lab_dir
    folders = [
        lab_dir,
        lab_dir / "redis",
        lab_dir / "redis" / "data",
        lab_dir / "prometheus",
        lab_dir / "prometheus" / "data",
        lab_dir / "targets",
        iso_lab.run_dir / "secrets",
    ]
    files = [
        lab_dir / ".lock",
        lab_dir / "redis" / "redis.pid",
        lab_dir / "redis" / "redis.log",
        lab_dir / "prometheus" / "prometheus.yml",
        lab_dir / "targets" / "README",
        iso_lab.run_dir / "secrets" / "audit.key",
    ]
    assert {str(p): oct(mode(p)) for p in folders} == {str(p): "0o700" for p in folders}
    assert {str(p): oct(mode(p)) for p in files} == {str(p): "0o600" for p in files}
    # Prometheus' own files (its TSDB) were made under the service's umask.
    made_by_prometheus = [p for p in (lab_dir / "prometheus" / "data").rglob("*")]
    assert made_by_prometheus
    wide = {str(p): oct(mode(p)) for p in made_by_prometheus if mode(p) & 0o077}
    assert not wide


def test_existing_lab_folders_are_tightened(iso_lab: LabHandle) -> None:
    """A lab dir made before (0755) is made private by the next `lab up`."""
    (iso_lab.settings.lab_dir / "redis").mkdir(parents=True)
    os.chmod(iso_lab.settings.lab_dir, 0o755)
    os.chmod(iso_lab.settings.lab_dir / "redis", 0o755)
    result = cli(["lab", "up", "-s", "redis"], iso_lab.env)
    assert result.exit_code == 0, result.stderr
    assert mode(iso_lab.settings.lab_dir) == 0o700
    assert mode(iso_lab.settings.lab_dir / "redis") == 0o700


def test_lab_status_never_shows_a_password(iso_lab: LabHandle) -> None:
    """A running Redis addressed with a password in its URL (the lab's has none; the probe
    does not need one): the table and the JSON show the URL without it."""
    started = cli(["lab", "up", "-s", "redis"], iso_lab.env)
    assert started.exit_code == 0, started.stderr
    port = service_port("redis", iso_lab.settings.redis.url)
    env = {
        **iso_lab.env,
        "CONSOLE_REDIS__URL": f"redis://:{SECRET}@127.0.0.1:{port}/0",
        "CONSOLE_MLFLOW__URL": f"http://oncall:{SECRET}@127.0.0.1:{free_port()}",
    }
    table = cli(["lab", "status", "-s", "redis,mlflow"], env)
    as_json = cli(["lab", "status", "-s", "redis,mlflow", "--attacks", "-o", "json"], env)
    for result in (table, as_json):
        assert result.exit_code == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr
    rows = {row["name"]: row for row in json.loads(as_json.stdout)["services"]}
    assert rows["redis"]["url"] == f"redis://***@127.0.0.1:{port}/0"
    assert rows["redis"]["state"] == "running"
    assert rows["mlflow"]["url"].startswith("http://***@127.0.0.1:")
    assert f"redis://***@127.0.0.1:{port}/0" in table.stdout


def test_lab_refusals_never_show_a_password(iso_lab: LabHandle) -> None:
    env = {
        **iso_lab.env,
        "CONSOLE_REDIS__URL": f"redis://:{SECRET}@10.0.0.1:6379/0",
        "CONSOLE_GATEWAY__URL": f"http://oncall:{SECRET}@10.0.0.1:8080",
    }
    for args in (
        ["lab", "up", "-s", "redis"],
        ["lab", "attack", "flood", "--client", "m", "--budget", "1"],
        ["lab", "traffic", "--duration", "1"],
    ):
        result = cli(args, env)
        assert result.exit_code == 1, result.stdout + result.stderr
        assert "loopback" in result.stderr and "10.0.0.1" in result.stderr
        assert SECRET not in result.stdout + result.stderr
