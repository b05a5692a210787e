"""contain-extraction: several steps; a failure undoes the applied ones in reverse."""

from __future__ import annotations

import json
from pathlib import Path

from runbook_support import Console, policy_key, redis_client
from support import free_port, run_cli


def test_contain_extraction_end_to_end(console: Console) -> None:
    client = f"mallory-{console.settings.redis.key_prefix}"  # silences outlive the test
    result = run_cli(
        [
            "runbook",
            "run",
            "contain-extraction",
            "-p",
            f"client={client}",
            "-p",
            "qpm=7",
            "--yes",
            "--output",
            "json",
        ],
        console.env,
    )
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)["run"]
    assert [s["status"] for s in run["steps"]] == ["applied"] * 4
    assert json.loads(redis_client(console).get(policy_key(console, "budget", client)))["qpm"] == 7
    assert redis_client(console).get(policy_key(console, "block", client)) is not None
    folder = console.run_dir / "runs" / run["run_id"] / "evidence"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"alerts.json", "policy.json", "registry.json"}
    policy = json.loads((folder / "policy.json").read_text())
    assert policy == {"block": None, "budget": None}  # the state before acting
    assert run["outputs"]["silence_id"]


def test_backend_down_at_plan_time_applies_nothing(console: Console) -> None:
    env = {**console.env, "CONSOLE_ALERTMANAGER__URL": f"http://127.0.0.1:{free_port()}"}
    result = run_cli(
        ["runbook", "run", "contain-extraction", "-p", "client=mallory-2", "--yes"], env
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: alertmanager GET") and "cannot connect" in result.stderr
    assert redis_client(console).get(policy_key(console, "budget", "mallory-2")) is None
    assert not console.settings.audit_path.exists()


FAILING_LAST_STEP = """\
name: contain-then-notify
target: "client:{{ params.client }}"
parameters:
  client: {type: string, required: true, pattern: '^[a-z0-9-]+$'}
steps:
  - id: evidence
    action: evidence.capture
    with: {client: "{{ params.client }}"}
  - id: budget
    action: policy.set_budget
    with: {client: "{{ params.client }}", qpm: 3}
  - id: block
    action: policy.block_client
    with: {client: "{{ params.client }}", ttl: 1h, reason: extraction}
  - id: notify
    action: http.request
    with:
      method: POST
      url: "AM_URL/api/v2/silences"
      json: {matchers: []}
      expect_status: [200]
"""


def test_failed_step_compensates_in_reverse(console: Console, tmp_path: Path) -> None:
    runbook = tmp_path / "contain-then-notify.yaml"
    runbook.write_text(FAILING_LAST_STEP.replace("AM_URL", console.settings.alertmanager.url))
    result = run_cli(
        ["runbook", "run", str(runbook), "-p", "client=mallory-3", "--yes", "--output", "json"],
        console.env,
    )
    assert result.returncode == 1
    assert "step notify failed" in result.stderr and "HTTP 422" in result.stderr
    run = json.loads(result.stdout)["run"]
    assert run["status"] == "compensated"
    assert [s["status"] for s in run["steps"]] == [
        "compensated",
        "compensated",
        "compensated",
        "failed",
    ]
    assert redis_client(console).get(policy_key(console, "block", "mallory-3")) is None
    assert redis_client(console).get(policy_key(console, "budget", "mallory-3")) is None
    evidence = console.run_dir / "runs" / run["run_id"] / "evidence" / "policy.json"
    assert evidence.is_file()  # evidence is kept
    records = [json.loads(x) for x in console.settings.audit_path.read_text().splitlines()]
    order = [(r["kind"], r["step"], r["result"]) for r in records if r["run_id"] == run["run_id"]]
    assert order[-8:] == [
        ("step-outcome", "notify", "failed"),
        ("compensate-intent", "block", "planned"),
        ("compensate-outcome", "block", "ok"),
        ("compensate-intent", "budget", "planned"),
        ("compensate-outcome", "budget", "ok"),
        ("compensate-intent", "evidence", "planned"),
        ("compensate-outcome", "evidence", "ok"),
        ("run-outcome", None, "compensated"),
    ]
