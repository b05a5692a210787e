"""Shadow budgets through the real runbooks and the CLI, against the session lab's Redis: the
mode is recorded (a record without one is enforced), a shadow budget keeps the enforced budget
in force, ``restore-query-budget`` removes it, and a failed later step puts the exact shadow
budget back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_support import Console, policy_key, redis_client
from support import run_cli

ENFORCE_THEN_HOOK = """\
name: enforce-then-hook
target: "client:{{ params.client }}"
parameters:
  client: {type: string, required: true, pattern: '^[a-z0-9-]+$'}
steps:
  - id: budget
    action: policy.set_budget
    with: {client: "{{ params.client }}", qpm: 5, mode: enforce}
  - id: hook
    action: http.request
    with:
      method: POST
      url: "http://127.0.0.1:1/hook"
"""


def _run(console: Console, *args: str) -> dict[str, Any]:
    result = run_cli(["runbook", "run", *args, "-o", "json"], console.env)
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _budget(console: Console, client: str) -> dict[str, Any] | None:
    raw = redis_client(console).get(policy_key(console, "budget", client))
    return None if raw is None else dict(json.loads(raw))


def test_failed_later_step_puts_the_exact_shadow_budget_back(
    console: Console, tmp_path: Path
) -> None:
    _run(
        console,
        "lower-query-budget",
        "-p",
        "client=dave",
        "-p",
        "qpm=20",
        "-p",
        "mode=shadow",
        "--yes",
    )
    shadow = _budget(console, "dave")
    assert shadow is not None and shadow["mode"] == "shadow" and shadow["enforced_qpm"] is None
    runbook = tmp_path / "enforce-then-hook.yaml"
    runbook.write_text(ENFORCE_THEN_HOOK)
    result = run_cli(
        ["runbook", "run", str(runbook), "-p", "client=dave", "--yes", "-o", "json"], console.env
    )
    assert result.returncode == 1
    run = json.loads(result.stdout)["run"]
    assert run["status"] == "compensated"
    assert _budget(console, "dave") == shadow  # the same record: mode, qpm, set_at, run


def test_shadow_keeps_the_enforced_budget_and_restore_removes_it(console: Console) -> None:
    _run(console, "lower-query-budget", "-p", "client=erin", "-p", "qpm=100", "--yes")
    enforced = _budget(console, "erin")
    assert enforced is not None and enforced["mode"] == "enforce"
    tried = _run(
        console,
        "lower-query-budget",
        "-p",
        "client=erin",
        "-p",
        "qpm=10",
        "-p",
        "mode=shadow",
        "--yes",
    )
    summary = tried["plan"]["steps"][0]["summary"]
    assert "the enforced 100 qpm stays in force" in summary, summary
    shadow = _budget(console, "erin")
    assert shadow is not None
    assert (shadow["mode"], shadow["qpm"], shadow["enforced_qpm"]) == ("shadow", 10, 100)

    plan = run_cli(
        [
            "runbook",
            "run",
            "lower-query-budget",
            "-p",
            "client=erin",
            "-p",
            "qpm=10",
            "--dry-run",
            "-o",
            "json",
        ],
        console.env,
    )
    step = json.loads(plan.stdout)["plan"]["steps"][0]
    assert "shadow 10 qpm -> enforce 10 qpm" in step["summary"]  # mode defaults to enforce
    assert "shadow: would have refused -" in step["summary"]  # no traffic counted yet

    restored = _run(console, "restore-query-budget", "-p", "client=erin", "--yes")
    assert "to 100 qpm" in restored["plan"]["steps"][0]["summary"]
    after = _budget(console, "erin")
    assert after is not None and (after["mode"], after["qpm"]) == ("enforce", 100)


def test_restore_removes_a_shadow_budget_and_old_records_are_enforced(console: Console) -> None:
    _run(
        console,
        "lower-query-budget",
        "-p",
        "client=fay",
        "-p",
        "qpm=3",
        "-p",
        "mode=shadow",
        "--yes",
    )
    _run(console, "restore-query-budget", "-p", "client=fay", "--yes")
    assert _budget(console, "fay") is None

    # A record written before budgets had a mode.
    legacy = {
        "client": "gus",
        "qpm": 7,
        "operator": "someone",
        "run_id": "r-old",
        "set_at": datetime.now(UTC).isoformat(),
        "previous_qpm": None,
    }
    redis_client(console).set(policy_key(console, "budget", "gus"), json.dumps(legacy))
    listed = run_cli(["get", "mitigations", "-o", "json"], console.env)
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["client"] == "gus")
    assert (row["mode"], row["qpm"], row["shadow_seen"]) == ("enforce", 7, None)
