"""The session lab (real Redis, MLflow, Alertmanager) through the CLI, as other tests see it."""

from __future__ import annotations

import json

import redis
from support import LabHandle, run_cli
from typer.testing import CliRunner

from console.cli.main import app


def test_session_services_are_running(lab: LabHandle) -> None:
    proc = run_cli(["lab", "status", "--output", "json"], lab.env)  # config via CONSOLE_CONFIG
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    for name in ("redis", "mlflow", "alertmanager"):
        assert rows[name]["state"] == "running", rows[name]
        assert isinstance(rows[name]["pid"], int)
    assert rows["redis"]["port"] == 26379 and rows["mlflow"]["port"] == 25000
    assert redis.Redis.from_url(lab.settings.redis.url).ping()


def test_up_again_reuses_services_and_reports_the_seed(lab: LabHandle) -> None:
    before = json.loads(run_cli(["lab", "status", "-o", "json"], lab.env).stdout)
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(lab.config_path),
            "lab",
            "up",
            "-s",
            "redis,mlflow,alertmanager",
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    pids = {row["name"]: row["pid"] for row in body["services"]}
    assert pids == {row["name"]: row["pid"] for row in before if row["name"] in pids}
    seeded = body["seeded"]
    assert seeded["name"] == "digits"
    assert (seeded["champion"], seeded["previous"]) == ("2", "1")
    assert [v["kind"] for v in seeded["versions"]] == ["logreg", "mlp"]


def test_audit_key_exists_for_the_session(lab: LabHandle) -> None:
    key = lab.settings.audit_key()
    assert key is not None and len(key) == 64


def test_lab_prometheus_adds_prometheus(lab_prometheus: LabHandle) -> None:
    proc = run_cli(["lab", "status", "-s", "prometheus", "-o", "json"], lab_prometheus.env)
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(proc.stdout)
    assert row["state"] == "running" and row["port"] == 29090
