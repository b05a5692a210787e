"""`runbook run ... --yes | head -n 1`: a closed stdout stops the printing, never the run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from runbook_support import (
    Console,
    audit_records,
    lock_keys,
    policy_key,
    redis_client,
    start_run,
)
from runbook_texts import block_pause_budget

BLOCK_WAIT_BUDGET = block_pause_budget("block-wait-budget", "piped", "1s")


def test_a_closed_stdout_does_not_stop_a_half_applied_run(console: Console, tmp_path: Path) -> None:
    runbook = tmp_path / "block-wait-budget.yaml"
    runbook.write_text(BLOCK_WAIT_BUDGET)
    proc = start_run(console, str(runbook), "-p", "client=piped")
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -n 1` does once it has its line
    err = proc.stderr.read()
    proc.wait(timeout=60)

    assert first.startswith("plan block-wait-budget")
    assert proc.returncode == 0, err  # the run's own status: it succeeded
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "stdout was closed" in err and "succeeded" in err
    [state_file] = (console.run_dir / "runs").glob("*/state.json")
    state = json.loads(state_file.read_text())
    assert state["status"] == "succeeded"
    assert [s["status"] for s in state["steps"]] == ["applied"] * 3
    assert json.loads(redis_client(console).get(policy_key(console, "budget", "piped")))["qpm"] == 5
    assert lock_keys(console) == []  # released
    outcome = audit_records(console)[-1]
    assert (outcome["kind"], outcome["result"]) == ("run-outcome", "succeeded")


def test_a_failing_event_sink_loses_events_not_the_run(console: Console) -> None:
    """What Rich's own console does on a broken pipe (SystemExit), from inside the engine."""
    from console.runbooks.engine import RunbookEngine, RunEvent
    from console.runbooks.loader import find_runbook

    engine = RunbookEngine(console.settings)
    loaded = find_runbook("block-client", console.settings.runbook_dirs)
    plan = asyncio.run(engine.plan(loaded, {"client": "sink-1", "reason": "pipe"}))
    seen: list[str] = []

    def sink(event: RunEvent) -> None:
        seen.append(event.kind)
        raise SystemExit(1) if len(seen) % 2 else BrokenPipeError(32, "Broken pipe")

    state = asyncio.run(engine.run(plan, confirmed=True, on_event=sink))
    assert state.status == "succeeded" and seen[-1] == "run-finished"
    assert redis_client(console).get(policy_key(console, "block", "sink-1")) is not None
    assert lock_keys(console) == []
