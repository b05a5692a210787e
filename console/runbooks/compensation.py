"""Compensation: undo, in reverse order, what a run applied, each undo audited."""

from __future__ import annotations

from typing import Any

from console.errors import AuditError, RunStateError
from console.runbooks.actions import ACTIONS
from console.runbooks.active_run import ActiveRun
from console.runbooks.events import RunEvent
from console.runbooks.failures import as_console_error
from console.runbooks.model import StepSpec
from console.runbooks.params import jsonable
from console.runbooks.state import StepState


async def compensate_all(run: ActiveRun) -> bool:
    """Undo, in reverse order, every step whose change is (or may be) in place.

    Sets the status to compensated or failed; returns False if the run was stopped (it was
    interrupted, or its state could not be saved: then it has its outcome already).
    """
    complete = True
    for step in reversed(run.state.steps):
        if not step.in_place:
            continue
        spec = run.loaded.runbook.step(step.id)
        try:
            done = await _compensate_step(run, spec, step)
        except AuditError as exc:
            run.interrupt(f"audit log: {exc}: compensation of {step.id} not run")
            return False
        except RunStateError as exc:
            run.state_lost(exc, f"at the undo of step {step.id}")
            return False
        complete = complete and done
    run.state.status = "compensated" if complete else "failed"
    return True


async def _compensate_step(run: ActiveRun, spec: StepSpec, step: StepState) -> bool:
    state, redactor = run.state, run.redactor
    if spec.compensate == "none":
        step.status = "not-compensated"
        run.save()
        return True
    run.emit(RunEvent("compensation-started", state.run_id, step.id))
    run.record("compensate-intent", step=step, result="planned", after=step.before)
    was = step.status
    step.status = "compensating"
    try:
        run.save()
    except RunStateError as exc:
        # No undo without a saved state: the intent gets its outcome, and nothing runs.
        step.status = was
        run.record("compensate-outcome", step=step, result="failed", error=f"not run: {exc}")
        raise
    try:
        restored = await _undo(run, spec, step)
    except Exception as exc:  # noqa: BLE001 - reported, then the next step is undone
        step.status = "compensation-failed"
        step.error = redactor.text(as_console_error(exc))
        run.record("compensate-outcome", step=step, result="failed", error=step.error)
        run.save()
        run.emit(
            RunEvent("compensation-finished", state.run_id, step.id, "failed", error=step.error)
        )
        return False
    step.status = "compensated"
    run.record("compensate-outcome", step=step, result="ok", after=redactor(jsonable(restored)))
    run.save()
    run.emit(RunEvent("compensation-finished", state.run_id, step.id, "compensated"))
    return True


async def _undo(run: ActiveRun, spec: StepSpec, step: StepState) -> Any:
    where = f"compensation of {spec.id}"
    if spec.compensate == "auto":
        action = ACTIONS[spec.action]
        args = run.arguments(action, spec.with_, where)
        return await action.compensate(args, run.ctx, step.before, step.after)
    assert not isinstance(spec.compensate, str)
    comp = spec.compensate
    action = ACTIONS[comp.action]
    args = run.arguments(action, comp.with_, where)
    plan = await action.plan(args, run.ctx)
    return plan.after if plan.noop else await action.apply(args, run.ctx, plan)
