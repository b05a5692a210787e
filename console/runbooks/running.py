"""Running a confirmed plan: lease, re-check, then intent, apply and outcome for each step."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from console import acl
from console.adapters.retry import with_retries
from console.durations import parse_duration
from console.errors import (
    AuditError,
    BackendUnavailable,
    ConfirmationRequired,
    ConsoleError,
    RunStateError,
    StalePlanError,
)
from console.runbooks.actions import ACTIONS, Action, ActionContext, StepPlan
from console.runbooks.active_run import ActiveRun
from console.runbooks.approvals import ApprovalRequirement, Approvals
from console.runbooks.compensation import compensate_all
from console.runbooks.engine_services import EngineServices
from console.runbooks.events import EventSink, RunEvent
from console.runbooks.failures import as_console_error, may_have_landed
from console.runbooks.lease import LeaseKeeper
from console.runbooks.model import StepSpec
from console.runbooks.params import jsonable
from console.runbooks.planning import RunPlan, public_arguments, redact_plan
from console.runbooks.resources import split_target
from console.runbooks.state import RunState, StepState
from console.runbooks.template import TemplateError, render


async def run_plan(
    services: EngineServices,
    plan: RunPlan,
    *,
    confirmed: bool,
    on_event: EventSink,
    approval: ApprovalRequirement | None = None,
) -> RunState:
    """Apply a plan. Refuses in read-only mode, without confirmation, on a held lock, on a
    stale plan, when the audit log or the run state cannot be written, and, when ``approval``
    is required, without an approved request for exactly this plan (used up here, once)."""
    services.refuse_read_only(plan.loaded.runbook.name)
    runbook = plan.loaded.runbook
    # Again at apply: the policy may have changed since the plan was shown.
    acl.check(
        services.settings.acl.path,
        plan.operator,
        "run",
        runbook.name,
        runbook.tags,
        split_target(plan.target),
    )
    if not confirmed:
        raise ConfirmationRequired(
            "not confirmed: run interactively to answer the prompt, or pass --yes"
        )
    services.audit.check_writable()
    state = _new_run_state(plan)
    async with services.action_context(plan.run_id) as ctx:
        locks = ctx.backends.locks
        lease = await locks.acquire(
            state.lease_names, plan.operator, plan.run_id, services.settings.locks.lease_s
        )
        keeper = LeaseKeeper(locks, lease)
        state.lease_token = keeper.token
        run = ActiveRun(
            services, state, plan.loaded, plan.values, plan.redactor, ctx, keeper, on_event
        )
        try:
            await _recheck(run)
            if approval is not None:
                approvals = Approvals(services.settings, services.audit, ctx.backends.approvals)
                used = await approvals.claim_plan(plan, approval)
                state.requested_by, state.approved_by = used.requester, used.decided_by
            # No intent (and so no change) without a saved state: a run that cannot be
            # saved could not be seen in `runbook status`, resumed or aborted.
            run.save()
            locked = f"locked {', '.join(lease.resources)}"
            run.emit(RunEvent("locked", plan.run_id, summary=locked))
            try:
                run.record(
                    "run-intent",
                    result="planned",
                    arguments=state.params,
                    after=[s.to_dict()["summary"] for s in plan.steps],
                )
            except AuditError:
                services.store.discard(plan.run_id)  # it never started
                raise
            keeper.start()
            await guarded(run, drive)
        finally:
            await keeper.stop(release=not run.keep_lease)
    return state


def _new_run_state(plan: RunPlan) -> RunState:
    runbook = plan.loaded.runbook
    return RunState(
        run_id=plan.run_id,
        runbook=runbook.name,
        runbook_path=str(plan.loaded.path),
        runbook_sha256=plan.loaded.sha256,
        params=plan.public_params,
        secret_params=[n for n, s in runbook.parameters.items() if s.secret],
        operator=plan.operator,
        environment=plan.environment,
        target=plan.target,
        leases=plan.leases or [plan.target],
        steps=[
            StepState(id=s.spec.id, action=s.spec.action, fingerprint=s.fingerprint)
            for s in plan.steps
        ],
    )


async def guarded(run: ActiveRun, body: Callable[[ActiveRun], Awaitable[None]]) -> None:
    """Run ``body``; a crash-like exit (Ctrl-C, cancel) leaves the run interrupted, keeping
    its lease, so nobody acts on a half-done target before someone looks at it."""
    try:
        await body(run)
    except BaseException as exc:
        run.interrupt(f"stopped: {type(exc).__name__}")
        raise


async def drive(run: ActiveRun) -> None:
    """Apply the pending steps in order; on failure compensate what was applied."""
    state = run.state
    failure: str | None = None
    for spec in run.loaded.runbook.steps:
        step = state.step(spec.id)
        if step.status in ("applied", "noop"):
            continue
        await run.keeper.check()
        if run.keeper.lost:
            run.interrupt(f"{run.keeper.lost}: stopped before step {spec.id}")
            return
        try:
            await _apply_step(run, spec, step)
        except AuditError as exc:
            run.interrupt(f"audit log: {exc}: stopped at step {spec.id}")
            return
        except RunStateError as exc:
            run.state_lost(exc, f"at step {spec.id}")
            return
        except ConsoleError as exc:
            failure = run.redactor.text(f"step {spec.id} failed: {exc}")
            break
    if failure is None:
        state.outputs = _outputs(run)
        state.status = "succeeded"
    else:
        state.error = failure
        if not await compensate_all(run):
            return
    run.finish()


async def _recheck(run: ActiveRun) -> None:
    """Terraform's rule: refuse a plan whose state or intended change no longer holds."""
    for step in run.state.steps:
        await _check_fingerprint(run, run.loaded.runbook.step(step.id), step, None)


async def _check_fingerprint(
    run: ActiveRun, spec: StepSpec, step: StepState, fresh: StepPlan | None
) -> None:
    if step.fingerprint is None:
        return
    action = ACTIONS[spec.action]
    if fresh is None:
        fresh = await _plan_now(run, spec)
    now = jsonable(action.fingerprint(fresh))
    if now != step.fingerprint:
        raise StalePlanError(
            run.redactor.text(
                f"step {spec.id}: {run.state.target} changed since the plan was confirmed "
                f"(was {_short(step.fingerprint)}, now {_short(now)}); "
                "nothing more was applied, plan again"
            )
        )


async def _plan_now(run: ActiveRun, spec: StepSpec) -> StepPlan:
    action = ACTIONS[spec.action]
    args = _step_arguments(run, spec)
    return redact_plan(await action.plan(args, run.ctx), run.redactor)


def _step_arguments(run: ActiveRun, spec: StepSpec) -> Any:
    return run.arguments(ACTIONS[spec.action], spec.with_, f"step {spec.id}")


def _outputs(run: ActiveRun) -> dict[str, Any]:
    variables = run.variables()
    outputs: dict[str, Any] = {}
    for name, template in run.loaded.runbook.outputs.items():
        try:
            outputs[name] = run.redactor(jsonable(render(template, variables)))
        except TemplateError:
            outputs[name] = None  # e.g. a field a no-op step had nothing to report for
    return outputs


async def _apply_step(run: ActiveRun, spec: StepSpec, step: StepState) -> None:
    state, redactor = run.state, run.redactor
    action = ACTIONS[spec.action]
    args = _step_arguments(run, spec)
    step.arguments = public_arguments(jsonable(args.model_dump(by_alias=True)), redactor)
    resumed_unknown = step.status == "applying"
    plan = redact_plan(await action.plan(args, run.ctx), redactor)
    if not resumed_unknown:
        await _check_fingerprint(run, spec, step, plan)
        step.before = redactor(jsonable(plan.before))  # what compensation restores
    step.summary = plan.summary
    run.emit(RunEvent("step-started", state.run_id, spec.id, summary=step.summary))
    run.record("step-intent", step=step, result="planned", after=redactor(jsonable(plan.after)))
    was = step.status
    step.status = "applying"
    step.started_at = datetime.now(UTC)
    try:
        run.save()
    except RunStateError as exc:
        # Nothing is applied without a saved state; the intent gets its outcome.
        step.status = was
        run.record("step-outcome", step=step, result="failed", error=f"not applied: {exc}")
        raise
    if plan.noop:
        # On resume, an effect found in place is this run's own: it stays compensable.
        step.status = "applied" if resumed_unknown else "noop"
        step.after = redactor(jsonable(plan.after))
    else:
        try:
            after = await _apply_with_policy(action, args, run.ctx, plan, spec, step)
        except Exception as exc:  # noqa: BLE001 - any failure is the step's outcome
            _fail_step(run, step, exc)
            raise as_console_error(exc) from None
        step.after = redactor(jsonable(after))
        step.status = "applied"
    step.finished_at = datetime.now(UTC)
    result = "noop" if step.status == "noop" else "ok"
    run.record("step-outcome", step=step, result=result, after=step.after)
    run.save()
    run.emit(RunEvent("step-finished", state.run_id, spec.id, step.status, summary=step.summary))


def _fail_step(run: ActiveRun, step: StepState, exc: Exception) -> None:
    step.status = "failed"
    step.uncertain = may_have_landed(exc)
    step.error = run.redactor.text(as_console_error(exc))
    step.finished_at = datetime.now(UTC)
    result = "unknown" if step.uncertain else "failed"
    run.record("step-outcome", step=step, result=result, error=step.error)
    run.save()
    run.emit(RunEvent("step-finished", run.state.run_id, step.id, "failed", error=step.error))


async def _apply_with_policy(
    action: Action[Any],
    args: Any,
    ctx: ActionContext,
    plan: StepPlan,
    spec: StepSpec,
    step: StepState,
) -> Any:
    """Apply within the step's timeout; retried only if the action says that is safe."""
    timeout = parse_duration(spec.timeout).total_seconds()
    retries = spec.retries if action.retry_safe(args) else 0

    async def attempt() -> Any:
        step.attempts += 1
        try:
            return await asyncio.wait_for(action.apply(args, ctx, plan), timeout)
        except TimeoutError:
            raise BackendUnavailable(f"timed out after {spec.timeout}") from None

    return await with_retries(attempt, retries)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 160 else text[:157] + "..."
