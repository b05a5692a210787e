"""Failure paths found in review: each would have applied, leaked or crashed before."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import redis
from runbook_support import Console
from support import run_cli
from typer.testing import CliRunner

from console.cli.main import app
from console.config import load_settings
from console.errors import StalePlanError
from console.lab.seed import SeededModel
from console.runbooks.engine import RunbookEngine
from console.runbooks.loader import find_runbook


def _redis(console: Console) -> redis.Redis:
    return redis.Redis.from_url(console.settings.redis.url, decode_responses=True)


def _key(console: Console, kind: str, client: str) -> str:
    return f"{console.settings.redis.key_prefix}:policy:{kind}:{client}"


BLOCK_THEN_HOOK = """\
name: block-then-hook
target: "client:{{ params.client }}"
parameters:
  client: {type: string, required: true, pattern: '^[a-z0-9-]+$'}
  token: {type: secret, required: true}
steps:
  - id: block
    action: policy.block_client
    with: {client: "{{ params.client }}", ttl: 1h, reason: test}
  - id: hook
    action: http.request
    with:
      method: POST
      url: "http://127.0.0.1:PORT/hook?token={{ params.token | url }}&c={{ params.client }}"
      headers: {Authorization: "Bearer {{ params.token }}"}
"""


@pytest.mark.parametrize("port", ["99999", "1"])
def test_unexpected_and_transport_failures_compensate_and_never_leak(
    console: Console, tmp_path: Path, port: str
) -> None:
    canary = "CAN/ARY+s3cr3t"
    runbook = tmp_path / "block-then-hook.yaml"
    runbook.write_text(BLOCK_THEN_HOOK.replace("PORT", port))
    result = run_cli(
        [
            "runbook",
            "run",
            str(runbook),
            "-p",
            "client=hooked",
            "-p",
            f"token={canary}",
            "--yes",
            "-o",
            "json",
        ],
        console.env,
    )
    assert result.returncode == 1
    assert "step hook failed" in result.stderr and "Traceback" not in result.stderr
    run = json.loads(result.stdout)["run"]
    assert run["status"] == "compensated"
    assert _redis(console).get(_key(console, "block", "hooked")) is None
    lock = _redis(console).get(f"{console.settings.redis.key_prefix}:lock:client:hooked")
    assert lock is None  # finished (compensated) runs release their lease
    forms = [canary, "CAN%2FARY%2Bs3cr3t", "CAN%2FARY+s3cr3t"]
    files = [p for p in console.run_dir.rglob("*") if p.is_file()]
    for text in [result.stdout, result.stderr] + [p.read_text() for p in files]:
        for form in forms:
            assert form not in text
    records = [json.loads(x) for x in console.settings.audit_path.read_text().splitlines()]
    assert records[-1]["kind"] == "run-outcome" and records[-1]["result"] == "compensated"


def test_deep_nesting_is_refused_before_the_stack_is(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 20000 + "]" * 20000 + "\n")
    result = CliRunner().invoke(app, ["runbook", "validate", str(deep)])
    assert result.exit_code == 1
    assert "nested deeper than 32 levels" in result.output


def test_huge_durations_and_bad_references_are_clear(console: Console, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "runbook",
            "run",
            "block-client",
            "-p",
            "client=c",
            "-p",
            "reason=why",
            "-p",
            "ttl=99999999999w",
            "--dry-run",
        ],
    )
    assert result.exit_code == 1 and "longer than 100 years" in result.output
    bad = tmp_path / "bad-ref.yaml"
    bad.write_text(
        'name: bad-ref\ntarget: "client:{{ params.client.x }}"\n'
        "parameters:\n  client: {type: string, required: true}\n"
        "steps:\n  - id: a\n    action: policy.unblock_client\n"
        '    with: {client: "{{ params.client }}"}\n'
    )
    result = CliRunner().invoke(app, ["runbook", "run", str(bad), "-p", "client=c", "--dry-run"])
    assert result.exit_code == 1 and "no 'x'" in result.output


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


def test_target_moving_after_confirmation_is_stale(
    console: Console, seeded_model: SeededModel
) -> None:
    settings = load_settings()
    engine = RunbookEngine(settings)
    loaded = find_runbook("rollback-model", settings.runbook_dirs)
    plan = asyncio.run(engine.plan(loaded, {"model": seeded_model.name}))
    assert plan.steps[0].plan is not None
    assert plan.steps[0].plan.after["version"] == seeded_model.previous
    # Someone points `previous` elsewhere after the operator confirmed "v2 -> v1".
    httpx.post(
        f"{settings.mlflow.url}/api/2.0/mlflow/registered-models/alias",
        json={"name": seeded_model.name, "alias": "previous", "version": seeded_model.champion},
    ).raise_for_status()
    with pytest.raises(StalePlanError, match="changed since the plan was confirmed"):
        asyncio.run(engine.run(plan, confirmed=True))
    alias = httpx.get(
        f"{settings.mlflow.url}/api/2.0/mlflow/registered-models/alias",
        params={"name": seeded_model.name, "alias": "champion"},
    ).json()["model_version"]["version"]
    assert alias == seeded_model.champion
