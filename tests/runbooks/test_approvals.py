"""Two-person approval (issue 15), with two operators in two processes on the real Redis and
the real audit chain: the requester's `runbook run` waits after its plan; another operator
approves (it proceeds) or denies (it stops, naming who and why); nobody approves their own
run; a request expires after its ttl; `runbook resume RUN_ID` runs an approved request that
nobody waits for, through the stale-plan check; the ACL's `approve` and the approvers list
say who may decide; every request, decision and expiry is an audit record naming its operator."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from runbook_support import REPO, Console, audit_records, policy_key, redis_client
from typer.testing import CliRunner, Result

from console.cli.main import app

BLOCK = ["block-client", "-p", "reason=approval test"]


def _cli(console: Console, operator: str, *args: str, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"CONSOLE_OPERATOR": operator, **env})


def _start(console: Console, operator: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """`aml-console runbook run ARGS --yes` as ``operator``, in a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "console", "runbook", "run", *args, "--yes"],
        env={**console.env, "CONSOLE_OPERATOR": operator, **env},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _pending(console: Console, timeout: float = 30) -> dict[str, Any]:
    """The one pending request, as `aml-console approvals -o json` shows it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = _cli(console, "observer", "approvals", "-o", "json")
        assert listed.exit_code == 0, listed.output
        rows = json.loads(listed.stdout)
        if rows:
            assert len(rows) == 1, rows
            return dict(rows[0])
        time.sleep(0.1)
    raise AssertionError("no approval request appeared")


def _blocked(console: Console, client: str) -> bool:
    return bool(redis_client(console).exists(policy_key(console, "block", client)))


def _kinds(console: Console, run_id: str) -> list[tuple[str, str, str | None]]:
    return [
        (r["kind"], r["operator"], r["result"])
        for r in audit_records(console)
        if r["run_id"] == run_id
    ]


def _verified(console: Console) -> None:
    verified = _cli(console, "auditor", "audit", "verify")
    assert verified.exit_code == 0, verified.output


CHANGES = {"CONSOLE_APPROVALS__REQUIRED": "changes"}


def test_another_operator_approves_and_the_waiting_run_proceeds(console: Console) -> None:
    waiting = _start(console, "alice", *BLOCK, "-p", "client=ap-c1", **CHANGES)
    request = _pending(console)
    run_id = request["run_id"]
    assert request["requester"] == "alice" and request["target"] == "client:ap-c1"
    assert "requires approval for every run that changes something" in request["why"]
    assert not _blocked(console, "ap-c1")  # nothing applied while it waits

    own = _cli(console, "alice", "approve", run_id, "--yes", **CHANGES)
    assert own.exit_code == 1
    assert "another operator must approve it (two-person rule)" in own.stderr
    assert len(own.stderr.strip().splitlines()) == 1

    approved = _cli(console, "bob", "approve", run_id, "--yes", **CHANGES)
    assert approved.exit_code == 0, approved.output
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, out + err
    assert "approval required" in out and "approved by bob" in out
    assert _blocked(console, "ap-c1")

    state = json.loads((console.run_dir / "runs" / run_id / "state.json").read_text())
    assert (state["requested_by"], state["approved_by"], state["status"]) == (
        "alice",
        "bob",
        "succeeded",
    )
    kinds = _kinds(console, run_id)
    assert kinds[:4] == [
        ("approval-request", "alice", "pending"),
        ("approval-approve", "bob", "approved"),
        ("approval-use", "alice", "used"),
        ("run-intent", "alice", "planned"),
    ]
    assert kinds[-1] == ("run-outcome", "alice", "succeeded")
    shown = _cli(console, "carol", "audit", "show", run_id)
    rows = [line for line in shown.stdout.splitlines() if "approval-" in line]
    assert [("alice" in r, "bob" in r) for r in rows] == [
        (True, False),
        (False, True),
        (True, False),
    ]
    again = _cli(console, "carol", "approve", run_id, "--yes", **CHANGES)
    assert again.exit_code == 1 and "(by bob) was already used by alice" in again.stderr
    _verified(console)


def test_a_denial_stops_the_waiting_run_with_who_and_why(console: Console) -> None:
    waiting = _start(console, "alice", *BLOCK, "-p", "client=ap-c2", **CHANGES)
    run_id = _pending(console)["run_id"]
    blank = _cli(console, "bob", "deny", run_id, "--reason", "  ", "--yes", **CHANGES)
    assert blank.exit_code == 1 and "needs a reason" in blank.stderr
    denied = _cli(
        console, "bob", "deny", run_id, "--reason", "false positive: a partner", "--yes", **CHANGES
    )
    assert denied.exit_code == 0, denied.output
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 1
    assert f"run {run_id} was denied by bob: false positive: a partner" in err
    assert not _blocked(console, "ap-c2")
    assert not (console.run_dir / "runs" / run_id).exists()
    denial = [r for r in audit_records(console) if r["kind"] == "approval-deny"]
    assert [(r["operator"], r["arguments"]["reason"]) for r in denial] == [
        ("bob", "false positive: a partner")
    ]
    _verified(console)


def test_a_request_expires_after_its_ttl_once_for_everyone(console: Console) -> None:
    env = {**CHANGES, "CONSOLE_APPROVALS__TTL": "2s"}
    left = _cli(console, "alice", "runbook", "run", *BLOCK, "-p", "client=ap-c3", "--yes",
                "--no-wait", **env)  # fmt: skip
    assert left.exit_code == 0, left.output
    run_id = _pending(console)["run_id"]
    time.sleep(2.2)
    late = _cli(console, "bob", "approve", run_id, "--yes", **env)
    assert late.exit_code == 1 and "expired at" in late.stderr
    resumed = _cli(console, "alice", "runbook", "resume", run_id, "--yes", **env)
    assert resumed.exit_code == 1 and "expired" in resumed.stderr
    assert not _blocked(console, "ap-c3")
    expiries = [r for r in audit_records(console) if r["kind"] == "approval-expire"]
    assert len(expiries) == 1  # the first console to notice writes it, once
    assert expiries[0]["operator"] == "bob" and expiries[0]["arguments"]["requester"] == "alice"
    listed = json.loads(_cli(console, "x", "approvals", "--all", "-o", "json", **env).stdout)
    assert [r["status"] for r in listed] == ["expired"]


def test_resume_runs_an_approved_request_nobody_waits_for_and_only_once(
    console: Console,
) -> None:
    left = _cli(console, "alice", "runbook", "run", *BLOCK, "-p", "client=ap-c4", "--yes",
                "--no-wait", **CHANGES)  # fmt: skip
    assert left.exit_code == 0, left.output
    run_id = _pending(console)["run_id"]
    early = _cli(console, "carol", "runbook", "resume", run_id, "--yes", **CHANGES)
    assert early.exit_code == 1 and "still waits for approval" in early.stderr
    assert _cli(console, "bob", "approve", run_id, "--yes", **CHANGES).exit_code == 0
    resumed = _cli(console, "carol", "runbook", "resume", run_id, "--yes", **CHANGES)
    assert resumed.exit_code == 0, resumed.output
    assert "requested by alice, approved by bob, applied by carol" in resumed.stdout
    assert _blocked(console, "ap-c4")
    state = json.loads((console.run_dir / "runs" / run_id / "state.json").read_text())
    assert (state["operator"], state["requested_by"], state["approved_by"]) == (
        "carol",
        "alice",
        "bob",
    )
    twice = _cli(console, "carol", "runbook", "resume", run_id, "--yes", **CHANGES)
    assert twice.exit_code == 1


def test_an_approved_run_whose_target_changed_is_stale(console: Console) -> None:
    left = _cli(console, "alice", "runbook", "run", *BLOCK, "-p", "client=ap-c5", "--yes",
                "--no-wait", **CHANGES)  # fmt: skip
    run_id = _pending(console)["run_id"]
    assert _cli(console, "bob", "approve", run_id, "--yes", **CHANGES).exit_code == 0
    # Someone blocks the client another way meanwhile: the approved plan no longer holds.
    other = _cli(console, "dave", "runbook", "run", "block-client", "-p", "client=ap-c5",
                 "-p", "reason=by another runbook", "--yes")  # fmt: skip
    assert other.exit_code == 0, other.output
    stale = _cli(console, "carol", "runbook", "resume", run_id, "--yes", **CHANGES)
    assert left.exit_code == 0 and stale.exit_code == 1
    assert "changed since" in stale.stderr and "nothing" in stale.stderr


POLICY = """\
groups:
  leads: [carol]
rules:
  - name: everyone-runs
    operators: ["*"]
    runbooks: ["*"]
    allow: [run]
  - name: leads-approve
    operators: [group:leads]
    runbooks: ["*"]
    allow: [approve]
"""


def test_only_those_the_acl_and_the_approvers_name_may_approve(
    console: Console, tmp_path: Path
) -> None:
    policy = tmp_path / "acl.yaml"
    policy.write_text(POLICY)
    runbook = tmp_path / "guarded-block.yaml"
    text = (REPO / "runbooks" / "block-client.yaml").read_text()
    runbook.write_text(
        text.replace("name: block-client", "name: guarded-block").replace(
            "steps:", "approval:\n  ttl: 10m\n  approvers: [group:leads, erin]\nsteps:", 1
        )
    )
    env = {"CONSOLE_ACL__PATH": str(policy)}
    args = ["runbook", "run", str(runbook), "-p", "client=ap-c6", "-p", "reason=acl approval"]
    left = _cli(console, "alice", *args, "--yes", "--no-wait", **env)
    assert left.exit_code == 0, left.output
    request = _pending(console)
    assert request["why"] == "runbook guarded-block requires approval"
    run_id = request["run_id"]

    bob = _cli(console, "bob", "approve", run_id, "--yes", **env)  # not an approver
    assert bob.exit_code == 1
    assert "bob is not an approver of run" in bob.stderr and "group:leads, erin" in bob.stderr
    erin = _cli(console, "erin", "approve", run_id, "--yes", **env)  # named, but the ACL says no
    assert erin.exit_code == 1
    assert "no ACL rule allows 'erin' to approve guarded-block" in erin.stderr
    read_only = _cli(console, "carol", "--read-only", "approve", run_id, "--yes", **env)
    assert read_only.exit_code == 1 and "read-only" in read_only.stderr
    assert _pending(console)["status"] == "pending"  # none of them changed it
    carol = _cli(console, "carol", "approve", run_id, "--yes", **env)
    assert carol.exit_code == 0, carol.output
    assert [k for k, _, _ in _kinds(console, run_id)] == ["approval-request", "approval-approve"]


def test_the_engine_refuses_a_run_that_needs_approval_without_one(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TUI's path: engine.run on a plan that needs approval, with no approved request."""
    import asyncio

    from console.config import load_settings
    from console.errors import ApprovalPending
    from console.runbooks.engine import RunbookEngine
    from console.runbooks.loader import find_runbook

    monkeypatch.setenv("CONSOLE_APPROVALS__REQUIRED", "always")
    settings = load_settings()
    engine = RunbookEngine(settings)
    loaded = find_runbook("block-client", settings.runbook_search_path, settings)
    plan = asyncio.run(engine.plan(loaded, {"client": "ap-c7", "reason": "no approval"}))
    assert engine.approval_for(plan) is not None
    with pytest.raises(ApprovalPending, match="has no approval request; nothing was changed"):
        asyncio.run(engine.run(plan, confirmed=True))
    assert not _blocked(console, "ap-c7")
    assert not audit_records(console)


def test_bad_ids_garbage_and_a_down_redis_are_one_line_errors(console: Console) -> None:
    for bad in ("../x", "a b", "x" * 200):
        result = _cli(console, "bob", "approve", bad, "--yes")
        assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
        assert "not a run id" in result.stderr
    missing = _cli(console, "bob", "approve", "20261202T000000Z-abcdef", "--yes")
    assert missing.exit_code == 1 and "no approval request" in missing.stderr
    key = f"{console.settings.redis.key_prefix}:approval:20261202T000000Z-bad000"
    redis_client(console).set(key, "{not json", px=60_000)
    garbage = _cli(console, "bob", "approve", "20261202T000000Z-bad000", "--yes")
    assert garbage.exit_code == 1 and "holds garbage" in garbage.stderr
    down = _cli(console, "bob", "approvals", CONSOLE_REDIS__URL="redis://127.0.0.1:1/0")
    assert down.exit_code == 1 and "redis" in down.stderr
    assert "Traceback" not in down.output + down.stderr


def test_a_request_or_approval_forged_in_redis_is_refused(console: Console) -> None:
    """Whoever can write to Redis (a gateway's credentials reach it) cannot approve a run, nor
    change what an approved one would run: requests and decisions are sealed with the audit key."""
    left = _cli(console, "alice", "runbook", "run", *BLOCK, "-p", "client=ap-c8", "--yes",
                "--no-wait", **CHANGES)  # fmt: skip
    assert left.exit_code == 0, left.output
    run_id = _pending(console)["run_id"]
    db = redis_client(console)
    key = f"{console.settings.redis.key_prefix}:approval:{run_id}"
    pending = json.loads(db.get(key))
    forged = {
        **pending,
        "status": "approved",
        "decided_by": "bob",
        "decided_at": pending["created_at"],
    }
    db.set(key, json.dumps(forged), px=600_000)
    resumed = _cli(console, "carol", "runbook", "resume", run_id, "--yes", **CHANGES)
    assert resumed.exit_code == 1
    assert "not sealed with this context's audit key" in resumed.stderr
    assert not _blocked(console, "ap-c8")

    db.set(key, json.dumps(pending), px=600_000)
    assert _cli(console, "bob", "approve", run_id, "--yes", **CHANGES).exit_code == 0
    approved = json.loads(db.get(key))
    swapped = {**approved, "params": {**approved["params"], "client": "vip-partner"}}
    db.set(key, json.dumps(swapped), px=600_000)
    resumed = _cli(console, "carol", "runbook", "resume", run_id, "--yes", **CHANGES)
    assert resumed.exit_code == 1 and "not sealed" in resumed.stderr
    assert not _blocked(console, "vip-partner") and not _blocked(console, "ap-c8")


def _no_wait(console: Console, operator: str, client: str, **env: str) -> dict[str, Any]:
    left = _cli(console, operator, "runbook", "run", *BLOCK, "-p", f"client={client}", "--yes",
                "--no-wait", "-o", "json", **{**CHANGES, **env})  # fmt: skip
    assert left.exit_code == 0, left.output
    request = dict(json.loads(left.stdout))
    assert request["status"] == "pending" and request["requester"] == operator
    assert request["next"] == f"aml-console runbook resume {request['run_id']}"
    return request


def test_one_runs_approval_cannot_be_moved_onto_another_run(console: Console) -> None:
    approved = _no_wait(console, "alice", "mv-approved")["run_id"]
    other = _no_wait(console, "alice", "mv-never-approved")["run_id"]
    assert _cli(console, "bob", "approve", approved, "--yes", **CHANGES).exit_code == 0
    db, prefix = redis_client(console), console.settings.redis.key_prefix
    db.set(f"{prefix}:approval:{other}", db.get(f"{prefix}:approval:{approved}"), px=600_000)
    moved = _cli(console, "carol", "runbook", "resume", other, "--yes", **CHANGES)
    assert moved.exit_code == 1 and "holds run" in moved.stderr and "not its own" in moved.stderr
    assert not _blocked(console, "mv-never-approved")


def test_an_approval_holds_only_for_the_parameters_that_were_approved(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan made under the approved run id with other parameters (the engine's API, which
    the TUI uses) does not get the approval."""
    import asyncio

    from console.config import load_settings
    from console.errors import StalePlanError
    from console.runbooks.engine import RunbookEngine
    from console.runbooks.loader import find_runbook

    run_id = _no_wait(console, "alice", "sw-approved")["run_id"]
    assert _cli(console, "bob", "approve", run_id, "--yes", **CHANGES).exit_code == 0
    monkeypatch.setenv("CONSOLE_APPROVALS__REQUIRED", "changes")
    monkeypatch.setenv("CONSOLE_OPERATOR", "alice")
    settings = load_settings()
    engine = RunbookEngine(settings)
    loaded = find_runbook("block-client", settings.runbook_search_path, settings)
    given = {"client": "sw-victim", "reason": "approval test", "ttl": "30d"}
    plan = asyncio.run(engine.plan(loaded, given, run_id=run_id))
    with pytest.raises(StalePlanError, match="other parameters or arguments"):
        asyncio.run(engine.run(plan, confirmed=True))
    assert not _blocked(console, "sw-victim") and not _blocked(console, "sw-approved")


def test_the_requester_under_another_case_is_still_the_requester(console: Console) -> None:
    run_id = _no_wait(console, "alice@corp.example", "case-c1")["run_id"]
    same = _cli(console, "Alice@Corp.Example", "approve", run_id, "--yes", **CHANGES)
    assert same.exit_code == 1 and "two-person rule" in same.stderr
    spaced = _cli(console, "alice ", "approve", run_id, "--yes", **CHANGES)
    assert spaced.exit_code == 1 and "starts or ends with a space" in spaced.stderr


def test_the_environment_cannot_loosen_a_contexts_approvals(
    console: Console, tmp_path: Path
) -> None:
    config = tmp_path / "prod.toml"
    lab_config = Path(console.env["CONSOLE_CONFIG"]).read_text()
    config.write_text(lab_config + '\n[contexts.test.approvals]\nrequired = "changes"\n')
    dry = ["runbook", "run", *BLOCK, "-p", "client=env-c1", "--dry-run"]
    env = {"CONSOLE_CONFIG": str(config)}
    loosened = _cli(console, "alice", *dry, **env, CONSOLE_APPROVALS__REQUIRED="never")
    assert loosened.exit_code == 1
    assert "would loosen the context's [approvals] required = 'changes'" in loosened.stderr
    tightened = _cli(console, "alice", *dry, **env, CONSOLE_APPROVALS__REQUIRED="always")
    assert tightened.exit_code == 0, tightened.output


def test_an_interrupted_run_resumes_only_with_an_approval_in_the_chain(
    console: Console,
) -> None:
    """A run state is a file anyone can write; the audit chain is signed."""
    from console.runbooks.state import RunState, RunStore, StepState

    runbook = REPO / "runbooks" / "block-client.yaml"
    from console.runbooks.loader import load_runbook

    loaded = load_runbook(runbook)
    run_id = "20261202T000000Z-fab001"
    RunStore(console.run_dir / "runs").save(
        RunState(
            run_id=run_id,
            runbook="block-client",
            runbook_path=str(runbook),
            runbook_sha256=loaded.sha256,
            params={"client": "fab-victim", "ttl": "30d", "reason": "forged state"},
            operator="alice",
            environment="test",
            target="client:fab-victim",
            status="interrupted",
            pid=1,
            pid_start=1,
            steps=[StepState(id="block", action="policy.block_client")],
        )
    )
    resumed = _cli(console, "alice", "runbook", "resume", run_id, "--yes", **CHANGES)
    assert resumed.exit_code == 1
    assert "needs approval here and the audit log holds none for it" in resumed.stderr
    assert not _blocked(console, "fab-victim")
