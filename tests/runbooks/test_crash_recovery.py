"""kill -9 mid-run, then status / resume / abort; a lost lock stops the run."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from runbook_support import Console, policy_key, redis_client, start_run, wait_for_step
from runbook_texts import block_pause_budget
from support import run_cli

PAUSING_RUNBOOK = block_pause_budget("block-then-budget", "drill", "3s")


def _killed_mid_run(console: Console, tmp_path: Path, client: str) -> str:
    runbook = tmp_path / "block-then-budget.yaml"
    runbook.write_text(PAUSING_RUNBOOK)
    proc = start_run(console, str(runbook), "-p", f"client={client}")
    state = wait_for_step(console, "pause", "applying")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    return str(state["run_id"])


def test_status_shows_the_interrupted_run_and_what_it_applied(
    console: Console, tmp_path: Path
) -> None:
    run_id = _killed_mid_run(console, tmp_path, "k9-status")
    result = run_cli(["runbook", "status", "--output", "json"], console.env)
    assert result.returncode == 0, result.stderr
    runs = {r["run_id"]: r for r in json.loads(result.stdout)}
    assert runs[run_id]["status"] == "interrupted"
    assert [(s["id"], s["status"]) for s in runs[run_id]["applied"]] == [
        ("block", "applied"),
        ("pause", "applying"),
    ]
    table = run_cli(["runbook", "status"], console.env)
    assert run_id in table.stdout and "interrupted" in table.stdout
    # The target stays locked for the dead run: nobody else acts on a half-done client.
    other = run_cli(
        ["runbook", "run", "unblock-client", "-p", "client=k9-status", "--yes"], console.env
    )
    assert other.returncode == 1 and f"run {run_id}" in other.stderr
    verify = run_cli(["audit", "verify", "--output", "json"], console.env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    unknown = json.loads(verify.stdout)["outcome_unknown"]
    assert any(u.get("run_id") == run_id and u.get("step") == "pause" for u in unknown)


def test_resume_finishes_the_run(console: Console, tmp_path: Path) -> None:
    run_id = _killed_mid_run(console, tmp_path, "k9-resume")
    assert redis_client(console).get(policy_key(console, "budget", "k9-resume")) is None
    result = run_cli(["runbook", "resume", run_id, "--yes", "--output", "json"], console.env)
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)["run"]
    assert run["status"] == "succeeded"
    assert [s["status"] for s in run["steps"]] == ["applied", "applied", "applied"]
    assert (
        json.loads(redis_client(console).get(policy_key(console, "budget", "k9-resume")))["qpm"]
        == 5
    )
    assert redis_client(console).get(policy_key(console, "block", "k9-resume")) is not None
    again = run_cli(["runbook", "resume", run_id, "--yes"], console.env)
    assert again.returncode == 1 and "succeeded: nothing to resume" in again.stderr


def test_abort_compensates_what_was_applied(console: Console, tmp_path: Path) -> None:
    run_id = _killed_mid_run(console, tmp_path, "k9-abort")
    assert redis_client(console).get(policy_key(console, "block", "k9-abort")) is not None
    result = run_cli(["runbook", "abort", run_id, "--yes", "--output", "json"], console.env)
    assert result.returncode == 0, result.stderr  # aborting is what was asked for
    run = json.loads(result.stdout)["run"]
    assert run["status"] == "aborted"
    assert redis_client(console).get(policy_key(console, "block", "k9-abort")) is None
    assert redis_client(console).get(policy_key(console, "budget", "k9-abort")) is None
    records = [json.loads(x) for x in console.settings.audit_path.read_text().splitlines()]
    comp = [
        (r["kind"], r["step"], r["result"])
        for r in records
        if r["run_id"] == run_id and r["kind"].startswith("compensate")
    ]
    assert comp == [
        ("compensate-intent", "pause", "planned"),
        ("compensate-outcome", "pause", "ok"),
        ("compensate-intent", "block", "planned"),
        ("compensate-outcome", "block", "ok"),
    ]
    status = run_cli(["runbook", "status", "--output", "json"], console.env)
    assert run_id not in {r["run_id"] for r in json.loads(status.stdout)}


def test_lost_lock_stops_the_run(console: Console, tmp_path: Path) -> None:
    runbook = tmp_path / "block-then-budget.yaml"
    runbook.write_text(PAUSING_RUNBOOK)
    proc = start_run(console, str(runbook), "-p", "client=lost-lock")
    wait_for_step(console, "pause", "applying")
    lock_key = f"{console.settings.redis.key_prefix}:lock:client:lost-lock"
    redis_client(console).set(
        lock_key,
        json.dumps(
            {
                "operator": "mallory",
                "run_id": "other-run",
                "token": "t",
                "acquired_at": "2026-01-01T00:00:00Z",
            }
        ),
        ex=60,
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "lost the lock on client:lost-lock (now held by mallory (run other-run))" in err
    assert redis_client(console).get(policy_key(console, "budget", "lost-lock")) is None


def test_resume_cannot_change_parameters(console: Console, tmp_path: Path) -> None:
    run_id = _killed_mid_run(console, tmp_path, "k9-param")
    result = run_cli(
        ["runbook", "resume", run_id, "-p", "client=someone-else", "--yes"], console.env
    )
    assert result.returncode == 1
    assert "client cannot change in the middle of a run" in result.stderr
    assert redis_client(console).get(policy_key(console, "budget", "someone-else")) is None
