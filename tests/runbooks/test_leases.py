"""A run leases every resource its steps change (clients, models, alerts), not only the target
it declares; a change its target does not cover is refused before anything runs."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from runbook_support import (
    Console,
    audit_records,
    lock_keys,
    policy_key,
    redis_client,
    start_run,
    wait_for_step,
)
from support import run_cli
from typer.testing import CliRunner

from console.adapters.locks import LockService
from console.cli.main import app
from console.errors import LockHeldError, ParameterError

INCIDENT_UNBLOCK = """\
name: incident-unblock
target: "TARGET"
parameters:
  incident: {type: string, required: true, pattern: '^[0-9]+$'}
  client: {type: string, required: true, pattern: '^[a-z0-9-]+$'}
steps:
  - id: pause
    action: control.wait
    with: {duration: 3s, reason: let the on-call engineer read the ticket}
  - id: unblock
    action: policy.unblock_client
    with: {client: "{{ params.client }}"}
"""


def _incident(tmp_path: Path, target: str, pause: str = "3s") -> Path:
    path = tmp_path / "incident-unblock.yaml"
    path.write_text(INCIDENT_UNBLOCK.replace("TARGET", target).replace("3s", pause))
    return path


def _contain(console: Console, client: str) -> list[str]:
    return ["runbook", "run", "contain-extraction", "-p", f"client={client}", "--yes"]


def test_validate_names_the_resource_the_target_does_not_cover(tmp_path: Path) -> None:
    path = _incident(tmp_path, "incident:{{ params.incident }}")
    result = CliRunner().invoke(app, ["runbook", "validate", str(path)])
    assert result.exit_code == 1, result.output
    assert (
        f"{path}:12: steps.1.with.client: changes client:{{{{params.client}}}}, which the target "
        "(incident:{{params.incident}}) does not cover" in result.output
    )
    wide = _incident(tmp_path, "incident:{{ params.incident }}, client:{{ params.client }}")
    assert CliRunner().invoke(app, ["runbook", "validate", str(wide)]).exit_code == 0


CONTAIN_WITH_A_PAUSE = """\
name: contain-with-a-pause
target: "client:{{ params.client }}"
parameters:
  client: {type: string, required: true, pattern: '^[a-z0-9-]+$'}
steps:
  - id: budget
    action: policy.set_budget
    with: {client: "{{ params.client }}", qpm: 3}
  - id: block
    action: policy.block_client
    with: {client: "{{ params.client }}", ttl: 1h, reason: extraction}
  - id: pause
    action: control.wait
    with: {duration: 2s, reason: as contain-extraction's evidence and silence take time}
  - id: silence
    action: alertmanager.silence
    with:
      alertname: AMLExtractionSuspected
      labels: {client: "{{ params.client }}"}
      duration: 10m
"""


def test_the_race_from_the_issue(console: Console, tmp_path: Path) -> None:
    """`incident:42` unblocks X while a containment of `client:X` is half done: X must stay
    blocked (before, both runs succeeded and X ended up unblocked)."""
    client = f"x-{console.settings.redis.key_prefix}"
    contain = tmp_path / "contain-with-a-pause.yaml"
    contain.write_text(CONTAIN_WITH_A_PAUSE)
    containing = start_run(console, str(contain), "-p", f"client={client}")
    wait_for_step(console, "pause", "applying")
    incident = _incident(tmp_path, "incident:{{ params.incident }}", pause="0s")
    unblocked = run_cli(
        ["runbook", "run", str(incident), "-p", "incident=42", "-p", f"client={client}", "--yes"],
        console.env,
    )
    _, err = containing.communicate(timeout=60)
    assert containing.returncode == 0, err
    assert unblocked.returncode == 1
    assert "steps.1.with.client: changes client:{{params.client}}, which the target " in (
        unblocked.stderr
    )
    assert redis_client(console).get(policy_key(console, "block", client)) is not None


def test_concurrent_runs_on_one_client_cannot_both_apply(console: Console, tmp_path: Path) -> None:
    client = f"y-{console.settings.redis.key_prefix}"
    # The second run is a new process: on a loaded machine its start takes seconds, and the
    # first run's pause must outlast it, or the two do not overlap at all.
    covered = _incident(
        tmp_path, "incident:{{ params.incident }}, client:{{ params.client }}", pause="12s"
    )
    incident = start_run(console, str(covered), "-p", "incident=42", "-p", f"client={client}")
    state = wait_for_step(console, "pause", "applying")
    prefix = console.settings.redis.key_prefix
    assert lock_keys(console) == [f"{prefix}:lock:client:{client}", f"{prefix}:lock:incident:42"]
    contained = run_cli(_contain(console, client), console.env)
    _, err = incident.communicate(timeout=60)
    assert contained.returncode == 1
    assert f"client:{client} is locked by oncall-tester (run {state['run_id']}" in (
        contained.stderr
    )
    assert redis_client(console).get(policy_key(console, "budget", client)) is None
    assert incident.returncode == 0, err
    assert lock_keys(console) == []


SILENCE_FOR_CLIENT = """\
name: silence-for-client
target: "alert:AMLExtractionSuspected"
parameters:
  client: {type: string, required: true, pattern: '^[a-z0-9-]+$'}
steps:
  - id: silence
    action: alertmanager.silence
    with:
      alertname: AMLExtractionSuspected
      labels: {client: "{{ params.client }}"}
      duration: 10m
  - id: pause
    action: control.wait
    with: {duration: 3s}
"""


def test_a_resource_is_leased_whatever_target_names_it(console: Console, tmp_path: Path) -> None:
    """Two targets (alert:..., client:X), one resource: the silence of X's extraction alert."""
    client = f"z-{console.settings.redis.key_prefix}"
    path = tmp_path / "silence-for-client.yaml"
    path.write_text(SILENCE_FOR_CLIENT)
    silencer = start_run(console, str(path), "-p", f"client={client}")
    wait_for_step(console, "pause", "applying")
    contained = run_cli(_contain(console, client), console.env)
    _, err = silencer.communicate(timeout=60)
    assert silencer.returncode == 0, err
    assert contained.returncode == 1
    assert f"alert:AMLExtractionSuspected{{client={client}}} is locked by" in contained.stderr
    assert redis_client(console).get(policy_key(console, "block", client)) is None


def test_abort_takes_back_every_lease_of_a_killed_run(console: Console, tmp_path: Path) -> None:
    client = f"k-{console.settings.redis.key_prefix}"
    covered = _incident(tmp_path, "incident:{{ params.incident }}, client:{{ params.client }}")
    proc = start_run(console, str(covered), "-p", "incident=7", "-p", f"client={client}")
    run_id = wait_for_step(console, "pause", "applying")["run_id"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(lock_keys(console)) == 2  # kept: nobody acts on a half-done run's resources
    refused = run_cli(
        ["runbook", "run", "unblock-client", "-p", f"client={client}", "--yes"], console.env
    )
    assert refused.returncode == 1 and f"run {run_id}" in refused.stderr
    aborted = run_cli(["runbook", "abort", run_id, "--yes", "-o", "json"], console.env)
    assert aborted.returncode == 0, aborted.stderr
    assert json.loads(aborted.stdout)["run"]["leases"] == [f"client:{client}", "incident:7"]
    assert lock_keys(console) == []
    assert audit_records(console)[-1]["result"] == "aborted"


def test_plan_refuses_what_the_target_does_not_cover(console: Console) -> None:
    """The same rule on the values, for a runbook that never went through a file."""
    from console.runbooks.engine import RunbookEngine
    from console.runbooks.loader import LoadedRunbook
    from console.runbooks.model import Runbook

    raw = {
        "name": "in-code",
        "target": "incident:{{ params.incident }}",
        "parameters": {"incident": {"type": "string"}, "client": {"type": "string"}},
        "steps": [
            {
                "id": "u",
                "action": "policy.unblock_client",
                "with": {"client": "{{ params.client }}"},
            }
        ],
    }
    loaded = LoadedRunbook(Runbook.model_validate(raw), Path("in-code.yaml"), "0" * 64)
    engine = RunbookEngine(console.settings)
    with pytest.raises(
        ParameterError,
        match=r"step u changes client:c9, which the target "
        r"\(incident:42\) does not cover; nothing was changed",
    ):
        asyncio.run(engine.plan(loaded, {"incident": "42", "client": "c9"}))


def test_leases_are_all_or_nothing(console: Console) -> None:
    async def go() -> None:
        r = aioredis.Redis.from_url(console.settings.redis.url, decode_responses=True)
        locks = LockService(r, console.settings.redis.key_prefix)
        try:
            held = await locks.acquire("client:b", "alice", "run-a", 30)
            with pytest.raises(LockHeldError, match="client:b is locked by alice"):
                await locks.acquire(["model:m", "client:b", "client:a"], "bob", "run-b", 30)
            assert await locks.holder("client:a") is None and await locks.holder("model:m") is None
            mine = await locks.acquire(["model:m", "client:a"], "bob", "run-b", 30)
            assert mine.resources == ("client:a", "model:m")  # sorted
            with pytest.raises(LockHeldError):
                await locks.take_back(["client:a", "model:m"], "eve", "run-e", 30, "wrong-token")
            await locks.release(mine)
            await locks.release(held)
            assert lock_keys(console) == []
        finally:
            await r.aclose()

    asyncio.run(go())
