"""The shipped runbooks end to end from the CLI, on the real Redis, MLflow and Alertmanager."""

from __future__ import annotations

import json
from typing import Any

import httpx
import redis
from runbook_support import Console
from support import run_cli
from typer.testing import CliRunner

from console.audit.verify import verify_log
from console.cli.main import app
from console.lab.seed import SeededModel


def cli(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    return result


def redis_client(console: Console) -> redis.Redis:
    return redis.Redis.from_url(console.settings.redis.url, decode_responses=True)


def block_key(console: Console, client: str) -> str:
    return f"{console.settings.redis.key_prefix}:policy:block:{client}"


def audit_records(console: Console, run_id: str) -> list[dict[str, Any]]:
    lines = console.settings.audit_path.read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["run_id"] == run_id]


def test_list_and_show(console: Console) -> None:
    listed = cli("runbook", "list", "--output", "json")
    assert listed.exit_code == 0, listed.output
    names = {row["name"] for row in json.loads(listed.output)}
    assert {"block-client", "rollback-model", "contain-extraction"} <= names
    shown = cli("runbook", "show", "block-client")
    assert shown.exit_code == 0
    assert "ttl" in shown.output and "policy.block_client" in shown.output


def test_block_client_dry_run_changes_nothing(console: Console) -> None:
    result = cli(
        "runbook",
        "run",
        "block-client",
        "--param",
        "client=acme-scraper-7",
        "--param",
        "ttl=30m",
        "--param",
        "reason=extraction suspected",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    assert "block acme-scraper-7 for 30m (not blocked now)" in result.output
    assert f"SET {block_key(console, 'acme-scraper-7')}" in result.output
    assert redis_client(console).get(block_key(console, "acme-scraper-7")) is None
    assert not console.settings.audit_path.exists()


def test_block_client_applies_and_audits(console: Console) -> None:
    result = cli(
        "runbook",
        "run",
        "block-client",
        "-p",
        "client=acme-scraper-7",
        "-p",
        "ttl=30m",
        "-p",
        "reason=extraction suspected",
        "--yes",
        "--output",
        "json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    run_id = out["run"]["run_id"]
    assert out["run"]["status"] == "succeeded"
    stored = json.loads(redis_client(console).get(block_key(console, "acme-scraper-7")))
    assert stored["reason"] == "extraction suspected" and stored["run_id"] == run_id
    ttl = redis_client(console).ttl(block_key(console, "acme-scraper-7"))
    assert 1700 < ttl <= 1800
    kinds = [(r["kind"], r["result"]) for r in audit_records(console, run_id)]
    assert kinds == [
        ("run-intent", "planned"),
        ("step-intent", "planned"),
        ("step-outcome", "ok"),
        ("run-outcome", "succeeded"),
    ]
    intent = audit_records(console, run_id)[1]
    assert intent["operator"] == "oncall-tester" and intent["before"] is None
    assert intent["target"] == "client:acme-scraper-7"
    report = verify_log(console.settings.audit_path, console.settings.audit_key() or b"", None)
    assert report.ok and report.records == 4

    again = cli(
        "runbook",
        "run",
        "block-client",
        "-p",
        "client=acme-scraper-7",
        "-p",
        "ttl=10m",
        "-p",
        "reason=again",
        "--yes",
    )
    assert again.exit_code == 0, again.output
    assert "no-op" in again.output
    noop_run = [
        r
        for r in map(json.loads, console.settings.audit_path.read_text().splitlines())
        if r["kind"] == "step-outcome"
    ][-1]
    assert noop_run["result"] == "noop"


def test_unblock_budget_and_restore(console: Console) -> None:
    r = redis_client(console)
    blocked = cli("runbook", "run", "block-client", "-p", "client=c1", "-p", "reason=why", "--yes")
    assert blocked.exit_code == 0, blocked.output
    assert cli("runbook", "run", "unblock-client", "-p", "client=c1", "--yes").exit_code == 0
    assert r.get(block_key(console, "c1")) is None

    budget_key = f"{console.settings.redis.key_prefix}:policy:budget:c1"
    first = cli("runbook", "run", "lower-query-budget", "-p", "client=c1", "-p", "qpm=100", "--yes")
    assert first.exit_code == 0, first.output
    second = cli(
        "runbook",
        "run",
        "lower-query-budget",
        "-p",
        "client=c1",
        "-p",
        "qpm=10",
        "--yes",
        "-o",
        "json",
    )
    assert json.loads(second.output)["run"]["outputs"] == {"qpm": 10, "previous_qpm": 100}
    assert json.loads(r.get(budget_key))["qpm"] == 10
    restored = cli("runbook", "run", "restore-query-budget", "-p", "client=c1", "--yes")
    assert restored.exit_code == 0, restored.output
    assert "restore the budget of c1 to 100 qpm" in restored.output
    assert json.loads(r.get(budget_key))["qpm"] == 100


def test_noop_runs_still_report_their_outputs(console: Console) -> None:
    args = [
        "runbook",
        "run",
        "lower-query-budget",
        "-p",
        "client=n1",
        "-p",
        "qpm=9",
        "--yes",
        "-o",
        "json",
    ]
    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    outputs = json.loads(second.output)["run"]["outputs"]
    assert outputs == {"qpm": 9, "previous_qpm": None}


def test_rollback_model_moves_champion(console: Console, seeded_model: SeededModel) -> None:
    name = seeded_model.name
    assert seeded_model.previous is not None
    result = cli("runbook", "run", "rollback-model", "-p", f"model={name}", "--yes", "-o", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["run"]["outputs"] == {
        "from_version": seeded_model.champion,
        "to_version": seeded_model.previous,
    }
    body = httpx.get(
        f"{console.settings.mlflow.url}/api/2.0/mlflow/registered-models/alias",
        params={"name": name, "alias": "champion"},
    ).json()
    assert body["model_version"]["version"] == seeded_model.previous
    again = cli("runbook", "run", "rollback-model", "-p", f"model={name}", "--yes")
    assert again.exit_code == 0 and "already" in again.output


def test_rollback_of_unknown_model_is_a_clear_error(console: Console) -> None:
    result = cli("runbook", "run", "rollback-model", "-p", "model=no-such-model", "--yes")
    assert result.exit_code == 1
    assert "no-such-model" in result.output and "not in the registry" in result.output
    assert "Traceback" not in result.output


def test_silence_alert_creates_a_real_silence(console: Console) -> None:
    alertname = f"AMLExtractionSuspected{console.settings.redis.key_prefix}"
    result = cli(
        "runbook",
        "run",
        "silence-alert",
        "-p",
        f"alertname={alertname}",
        "-p",
        "duration=1h",
        "--yes",
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    silence_id = json.loads(result.output)["run"]["outputs"]["silence_id"]
    silence = httpx.get(f"{console.settings.alertmanager.url}/api/v2/silence/{silence_id}").json()
    assert silence["status"]["state"] == "active"
    assert {"name": "alertname", "value": alertname, "isRegex": False, "isEqual": True} in silence[
        "matchers"
    ]
    assert silence["createdBy"] == "oncall-tester"


def test_headless_subprocess_exit_codes(console: Console) -> None:
    ok = run_cli(
        [
            "runbook",
            "run",
            "block-client",
            "-p",
            "client=sub-1",
            "-p",
            "reason=drill",
            "--yes",
            "--output",
            "json",
        ],
        console.env,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["run"]["status"] == "succeeded"
    refused = run_cli(
        ["runbook", "run", "block-client", "-p", "client=sub-2", "-p", "reason=drill"], console.env
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("error:")
    assert "--yes" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert redis_client(console).get(block_key(console, "sub-2")) is None


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["runbook", "--help"],
        ["runbook", "run", "--help"],
        ["runbook", "status", "--help"],
        ["runbook", "resume", "--help"],
        ["runbook", "abort", "--help"],
        ["runbook", "validate", "--help"],
        ["audit", "--help"],
        ["lab", "--help"],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output
