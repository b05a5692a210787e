"""Crash recovery: which runs are unfinished, and resuming or aborting one of them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from console import acl
from console.adapters.processes import start_ticks
from console.errors import ApprovalPending, AuditError, ParameterError, RunStateError
from console.runbooks.active_run import ActiveRun
from console.runbooks.approval_rules import may_need_approval
from console.runbooks.compensation import compensate_all
from console.runbooks.engine_services import EngineServices
from console.runbooks.events import EventSink
from console.runbooks.lease import LeaseKeeper
from console.runbooks.loader import LoadedRunbook, load_runbook
from console.runbooks.params import Redactor, resolve, secret_values
from console.runbooks.resources import split_target
from console.runbooks.running import drive, guarded
from console.runbooks.state import RunState, RunStore


def unfinished_runs(store: RunStore) -> list[RunState]:
    return [
        r
        for r in store.all()
        if r.effective_status in ("running", "interrupted") or r.status == "failed"
    ]


async def resume_run(
    services: EngineServices, run_id: str, given_secrets: dict[str, Any], on_event: EventSink
) -> RunState:
    """Finish an interrupted run: steps already applied are skipped, a step whose outcome
    is unknown is re-planned (kept if its effect is in place, else applied again)."""
    state, loaded, values = _reload(services, run_id, given_secrets, "resume")
    undone = [s.id for s in state.steps if s.status.startswith("compensat")]
    if state.status == "failed" or undone:
        raise RunStateError(
            f"run {run_id} was being undone ({', '.join(undone) or 'compensation failed'}); "
            f"finish undoing it with `runbook abort {run_id}`"
        )
    async with _taken_back(services, state, loaded, values, on_event) as run:
        _start(run, "resume", error=None)
        run.keeper.start()
        await guarded(run, drive)
    return state


async def abort_run(
    services: EngineServices, run_id: str, given_secrets: dict[str, Any], on_event: EventSink
) -> RunState:
    """Undo what an interrupted (or partly compensated) run applied."""
    state, loaded, values = _reload(services, run_id, given_secrets, "abort")
    async with _taken_back(services, state, loaded, values, on_event) as run:
        _start(run, "abort", error="aborted by operator")
        await guarded(run, _undo_all)
    return state


def _start(run: ActiveRun, verb: str, error: str | None) -> None:
    """Save the state as running again, then audit the intent: never an intent without a
    saved state (it could not be seen or finished). A failed intent puts the state back."""
    state = run.state
    was = (state.status, state.error)
    state.status, state.error = "running", error
    try:
        run.save()
    except RunStateError:
        state.status, state.error = was
        raise
    try:
        run.record("run-intent", result=verb, arguments=state.params)
    except AuditError:
        state.status, state.error = was
        with contextlib.suppress(RunStateError):
            run.save()
        raise


async def _undo_all(run: ActiveRun) -> None:
    if await compensate_all(run):
        run.state.status = "aborted" if run.state.status == "compensated" else "failed"
        run.finish()


@contextlib.asynccontextmanager
async def _taken_back(
    services: EngineServices,
    state: RunState,
    loaded: LoadedRunbook,
    values: dict[str, Any],
    on_event: EventSink,
) -> AsyncIterator[ActiveRun]:
    """The run again, under the lease its dead process held (compared on the recorded token,
    so two operators resuming one run cannot both get it)."""
    settings = services.settings
    redactor = Redactor(secret_values(loaded.runbook, values))
    async with services.action_context(state.run_id) as ctx:
        locks = ctx.backends.locks
        lease = await locks.take_back(
            state.lease_names,
            settings.operator,
            state.run_id,
            settings.locks.lease_s,
            state.lease_token,
        )
        keeper = LeaseKeeper(locks, lease)
        state.pid, state.pid_start = os.getpid(), start_ticks(os.getpid())
        state.lease_token = keeper.token
        run = ActiveRun(services, state, loaded, values, redactor, ctx, keeper, on_event)
        try:
            yield run
        finally:
            # A run that stopped before it started again keeps the dead run's place.
            await keeper.stop(release=not run.keep_lease and state.status != "interrupted")


def _may_resume(services: EngineServices, state: RunState, loaded: LoadedRunbook) -> None:
    """What a fresh run would be checked for, before any more of it is applied: the ACL (for
    whoever resumes), and approval, which the audit chain must hold (a run state is a file,
    the chain is signed). Undoing (`abort`) needs neither: it only puts things back."""
    runbook = loaded.runbook
    acl.check(
        services.settings.acl.path,
        services.settings.operator,
        "run",
        runbook.name,
        runbook.tags,
        split_target(state.target),
    )
    own_rule = runbook.approval is not None and runbook.approval.required
    if not may_need_approval(own_rule, services.settings):
        return
    records = services.audit.records(state.run_id)
    if not any(r.kind == "approval-approve" and r.result == "approved" for r in records):
        raise ApprovalPending(
            f"run {state.run_id} needs approval here and the audit log holds none for it: "
            f"undo it with `runbook abort {state.run_id}`, or plan it again; nothing was changed"
        )


def _reload(
    services: EngineServices, run_id: str, given: dict[str, Any], verb: str
) -> tuple[RunState, LoadedRunbook, dict[str, Any]]:
    """The run's state, its runbook (unchanged) and its parameters with the secrets given again;
    refuses a run that is still running or finished, and any non-secret parameter."""
    services.refuse_read_only(f"{verb} {run_id}")
    state = services.store.load(run_id)
    status = state.effective_status
    if status == "running":
        raise RunStateError(
            f"run {run_id} is still running (pid {state.pid} on {state.host}); "
            f"wait for it or stop it first"
        )
    if status not in ("interrupted", "failed"):
        raise RunStateError(f"run {run_id} is {status}: nothing to {verb}")
    not_secret = sorted(set(given) - set(state.secret_params))
    if not_secret:
        raise ParameterError(
            f"{verb} takes only the run's secret parameters again; "
            f"{', '.join(not_secret)} cannot change in the middle of a run"
        )
    services.audit.check_writable()
    loaded = load_runbook(Path(state.runbook_path), services.settings)
    if loaded.sha256 != state.runbook_sha256:
        raise RunStateError(
            f"runbook {state.runbook_path} changed since run {run_id} started; "
            f"{verb} refuses to run a different runbook"
        )
    if verb == "resume":
        _may_resume(services, state, loaded)
    missing = [n for n in state.secret_params if n not in given and state.params.get(n)]
    if missing:
        raise ParameterError(
            f"{verb} needs the secret parameter(s) again: "
            + ", ".join(f"--param {n}=..." for n in missing)
        )
    merged = {
        k: v for k, v in state.params.items() if v is not None and k not in state.secret_params
    }
    merged.update(given)
    return state, loaded, resolve(loaded.runbook, merged)
