"""Run state: nothing is applied without a saved state, every intent gets its outcome, and
the state (it holds the lease token) and the evidence are readable by their owner only."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from runbook_support import (
    Console,
    audit_records,
    lock_keys,
    policy_key,
    redis_client,
    start_run,
    wait_for_step,
)
from runbook_texts import block_pause_budget
from support import run_cli

from console.audit.verify import verify_log

BLOCK_WAIT_BUDGET = block_pause_budget("block-wait-budget", "state", "2s")


def _open_intents(console: Console) -> list[dict[str, str]]:
    report = verify_log(console.settings.audit_path, console.settings.audit_key() or b"", None)
    assert report.ok, report.problem
    return report.outcome_unknown


def test_an_unsavable_run_applies_nothing_and_audits_nothing(console: Console) -> None:
    runs = console.run_dir / "runs"
    runs.parent.mkdir(parents=True, exist_ok=True)
    runs.write_text("a file where the runs folder should be\n")  # chmod does not stop root
    args = ["runbook", "run", "block-client", "-p", "client=nosave", "-p", "reason=disk"]
    result = run_cli([*args, "--yes"], console.env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot save the state of run" in lines[0], result.stderr
    assert redis_client(console).get(policy_key(console, "block", "nosave")) is None
    assert not [r for r in audit_records(console) if r["kind"] == "run-intent"]
    assert lock_keys(console) == []


def test_a_state_lost_mid_run_stops_it_with_an_outcome(console: Console, tmp_path: Path) -> None:
    runbook = tmp_path / "block-wait-budget.yaml"
    runbook.write_text(BLOCK_WAIT_BUDGET)
    proc = start_run(console, str(runbook), "-p", "client=midsave")
    run_id = wait_for_step(console, "pause", "applying")["run_id"]
    folder = console.run_dir / "runs" / run_id
    away = folder.with_name(f"{run_id}.away")
    folder.rename(away)
    folder.write_text("not a folder")  # the save after the pause fails
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"run {run_id} failed: cannot save the state of run {run_id}" in err
    assert "stopped at step pause; applied and not undone: block, pause" in err
    assert redis_client(console).get(policy_key(console, "budget", "midsave")) is None
    assert redis_client(console).get(policy_key(console, "block", "midsave")) is not None
    outcome = audit_records(console)[-1]
    assert (outcome["kind"], outcome["result"]) == ("run-outcome", "failed")
    assert _open_intents(console) == []  # every intent has its outcome
    assert lock_keys(console)  # half done: the lease stays for resume or abort

    folder.unlink()
    away.rename(folder)
    status = run_cli(["runbook", "status", "-o", "json"], console.env)
    assert {r["run_id"]: r["status"] for r in json.loads(status.stdout)}[run_id] == "interrupted"
    resumed = run_cli(["runbook", "resume", run_id, "--yes", "-o", "json"], console.env)
    assert resumed.returncode == 0, resumed.stderr
    budget = redis_client(console).get(policy_key(console, "budget", "midsave"))
    assert json.loads(budget)["qpm"] == 5
    assert lock_keys(console) == []


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_and_evidence_are_private_whatever_the_umask(console: Console) -> None:
    client = f"m-{console.settings.redis.key_prefix}"
    proc = start_run(
        console, "contain-extraction", "-p", f"client={client}", preexec_fn=lambda: os.umask(0)
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    runs = console.run_dir / "runs"
    [folder] = [p for p in runs.iterdir() if p.is_dir()]
    evidence = folder / "evidence"
    files = [folder / "state.json", *evidence.iterdir()]
    assert {p.name for p in files} >= {"state.json", "manifest.json", "policy.json"}
    assert {str(p): _mode(p) for p in (runs, folder, evidence)} == {
        str(p): 0o700 for p in (runs, folder, evidence)
    }
    assert {str(p): _mode(p) for p in files} == {str(p): 0o600 for p in files}
    assert not list(runs.rglob("*.tmp"))
