"""The runbook engine: plan, confirm, lock, re-check, audit intent, apply, audit outcome.

It never imports a UI. The CLI and the TUI call the same methods and get the same audit
records; progress arrives through an ``on_event`` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console.adapters.backends import Backends
from console.adapters.processes import start_ticks
from console.adapters.retry import with_retries
from console.audit.log import AuditLog
from console.audit.records import AuditEvent, RecordKind
from console.config import Settings
from console.durations import parse_duration
from console.errors import (
    AuditError,
    BackendResponseError,
    BackendUnavailable,
    ConfirmationRequired,
    ConsoleError,
    ParameterError,
    ReadOnlyError,
    RunbookError,
    RunStateError,
    StalePlanError,
)
from console.runbooks.actions import ACTIONS, Action, ActionContext, StepPlan
from console.runbooks.lease import LeaseKeeper
from console.runbooks.loader import LoadedRunbook, load_runbook
from console.runbooks.model import StepSpec
from console.runbooks.params import Redactor, jsonable, resolve, secret_values
from console.runbooks.planning import (
    RunPlan,
    make_plan,
    redact_plan,
    render_checked,
    scope,
    validate_args,
)
from console.runbooks.state import RunState, RunStore, StepState, new_run_id
from console.runbooks.template import TemplateError, render

__all__ = ["RunEvent", "RunPlan", "RunbookEngine"]


@dataclass
class RunEvent:
    kind: str
    """locked, step-started, step-finished, compensation-started, compensation-finished,
    run-finished."""
    run_id: str
    step: str | None = None
    status: str | None = None
    summary: str = ""
    error: str | None = None


EventSink = Callable[[RunEvent], None]


def _ignore(event: RunEvent) -> None:
    return None


@dataclass
class _Run:
    """Everything one execution needs, so the step functions take one argument."""

    state: RunState
    loaded: LoadedRunbook
    values: dict[str, Any]
    redactor: Redactor
    ctx: ActionContext
    keeper: LeaseKeeper
    on_event: EventSink


class RunbookEngine:
    def __init__(self, settings: Settings, audit: AuditLog | None = None) -> None:
        self.settings = settings
        self._audit = audit
        self.store = RunStore(settings.runs_dir)

    @property
    def audit(self) -> AuditLog:
        if self._audit is None:
            self._audit = AuditLog.from_settings(self.settings)
        return self._audit

    @contextlib.asynccontextmanager
    async def _context(self, run_id: str) -> AsyncIterator[ActionContext]:
        backends = Backends(self.settings)
        try:
            yield ActionContext(
                settings=self.settings,
                backends=backends,
                run_id=run_id,
                operator=self.settings.operator,
                run_dir=self.store.folder(run_id),
            )
        finally:
            await backends.aclose()

    # Plan -----------------------------------------------------------------------------------
    async def plan(self, loaded: LoadedRunbook, given: dict[str, Any]) -> RunPlan:
        """Resolve parameters, check preconditions and read the real state of every step."""
        values = resolve(loaded.runbook, given)
        redactor = Redactor(secret_values(loaded.runbook, values))
        async with self._context(new_run_id()) as ctx:
            return await make_plan(loaded, values, redactor, ctx)

    # Run ------------------------------------------------------------------------------------
    async def run(
        self, plan: RunPlan, *, confirmed: bool, on_event: EventSink = _ignore
    ) -> RunState:
        """Apply a plan. Refuses in read-only mode, without confirmation, on a held lock,
        on a stale plan, and when the audit log cannot be written."""
        self._refuse_read_only(plan.loaded.runbook.name)
        if not confirmed:
            raise ConfirmationRequired(
                "not confirmed: run interactively to answer the prompt, or pass --yes"
            )
        self.audit.check_writable()
        runbook = plan.loaded.runbook
        state = RunState(
            run_id=plan.run_id,
            runbook=runbook.name,
            runbook_path=str(plan.loaded.path),
            runbook_sha256=plan.loaded.sha256,
            params=plan.public_params,
            secret_params=[n for n, s in runbook.parameters.items() if s.secret],
            operator=plan.operator,
            environment=plan.environment,
            target=plan.target,
            steps=[
                StepState(id=s.spec.id, action=s.spec.action, fingerprint=s.fingerprint)
                for s in plan.steps
            ],
        )
        async with self._context(plan.run_id) as ctx:
            locks = ctx.backends.locks
            lease = await locks.acquire(
                plan.target, plan.operator, plan.run_id, self.settings.locks.lease_s
            )
            keeper = LeaseKeeper(locks, lease)
            state.lease_token = keeper.token
            run = _Run(state, plan.loaded, plan.values, plan.redactor, ctx, keeper, on_event)
            try:
                await self._recheck(run)
                on_event(RunEvent("locked", plan.run_id, summary=f"locked {plan.target}"))
                self._record(
                    run,
                    "run-intent",
                    result="planned",
                    arguments=state.params,
                    after=[s.to_dict()["summary"] for s in plan.steps],
                )
                self.store.save(state)
                keeper.start()
                await self._guarded(run, self._drive)
            finally:
                await keeper.stop(release=state.status != "interrupted")
        return state

    async def _recheck(self, run: _Run) -> None:
        """Terraform's rule: refuse a plan whose state or intended change no longer holds."""
        for step in run.state.steps:
            await self._check_fingerprint(run, run.loaded.runbook.step(step.id), step, None)

    async def _check_fingerprint(
        self, run: _Run, spec: StepSpec, step: StepState, fresh: StepPlan | None
    ) -> None:
        if step.fingerprint is None:
            return
        action = ACTIONS[spec.action]
        if fresh is None:
            fresh = await self._plan_now(run, spec)
        now = jsonable(action.fingerprint(fresh))
        if now != step.fingerprint:
            raise StalePlanError(
                run.redactor.text(
                    f"step {spec.id}: {run.state.target} changed since the plan was confirmed "
                    f"(was {_short(step.fingerprint)}, now {_short(now)}); "
                    "nothing more was applied, plan again"
                )
            )

    async def _plan_now(self, run: _Run, spec: StepSpec) -> StepPlan:
        action = ACTIONS[spec.action]
        args = self._args(run, spec)
        return redact_plan(await action.plan(args, run.ctx), run.redactor)

    def _args(self, run: _Run, spec: StepSpec) -> Any:
        where = f"step {spec.id}"
        variables = scope(run.values, run.ctx, _step_scope(run.state))
        rendered = render_checked(spec.with_, where, variables, run.redactor)
        return validate_args(ACTIONS[spec.action].Args, rendered, where, run.redactor)

    async def _guarded(self, run: _Run, body: Callable[[_Run], Any]) -> None:
        """Run ``body``; a crash-like exit (Ctrl-C, cancel) leaves the run interrupted, keeping
        its lease, so nobody acts on a half-done target before someone looks at it."""
        try:
            await body(run)
        except BaseException as exc:
            self._interrupt(run, f"stopped: {type(exc).__name__}")
            raise

    async def _drive(self, run: _Run) -> None:
        """Apply the pending steps in order; on failure compensate what was applied."""
        state = run.state
        failure: str | None = None
        for spec in run.loaded.runbook.steps:
            step = state.step(spec.id)
            if step.status in ("applied", "noop"):
                continue
            await run.keeper.check()
            if run.keeper.lost:
                self._interrupt(run, f"{run.keeper.lost}: stopped before step {spec.id}")
                return
            try:
                await self._apply_step(run, spec, step)
            except AuditError as exc:
                self._interrupt(run, f"audit log: {exc}: stopped at step {spec.id}")
                return
            except ConsoleError as exc:
                failure = run.redactor.text(f"step {spec.id} failed: {exc}")
                break
        if failure is None:
            state.outputs = self._outputs(run)
            state.status = "succeeded"
        else:
            state.error = failure
            if not await self._compensate_all(run):
                return
        self._finish(run)

    def _outputs(self, run: _Run) -> dict[str, Any]:
        variables = scope(run.values, run.ctx, _step_scope(run.state))
        outputs: dict[str, Any] = {}
        for name, template in run.loaded.runbook.outputs.items():
            try:
                outputs[name] = run.redactor(jsonable(render(template, variables)))
            except TemplateError:
                outputs[name] = None  # e.g. a field a no-op step had nothing to report for
        return outputs

    async def _apply_step(self, run: _Run, spec: StepSpec, step: StepState) -> None:
        state, redactor = run.state, run.redactor
        action = ACTIONS[spec.action]
        args = self._args(run, spec)
        step.arguments = redactor(jsonable(args.model_dump(by_alias=True)))
        resumed_unknown = step.status == "applying"
        plan = redact_plan(await action.plan(args, run.ctx), redactor)
        if not resumed_unknown:
            await self._check_fingerprint(run, spec, step, plan)
            step.before = redactor(jsonable(plan.before))  # what compensation restores
        step.summary = plan.summary
        run.on_event(RunEvent("step-started", state.run_id, spec.id, summary=step.summary))
        self._record(
            run, "step-intent", step=step, result="planned", after=redactor(jsonable(plan.after))
        )
        step.status = "applying"
        step.started_at = datetime.now(UTC)
        self.store.save(state)
        if plan.noop:
            # On resume, an effect found in place is this run's own: it stays compensable.
            step.status = "applied" if resumed_unknown else "noop"
            step.after = redactor(jsonable(plan.after))
        else:
            try:
                after = await self._apply_with_policy(action, args, run.ctx, plan, spec, step)
            except Exception as exc:  # noqa: BLE001 - any failure is the step's outcome
                self._fail_step(run, step, exc)
                raise _as_console_error(exc) from None
            step.after = redactor(jsonable(after))
            step.status = "applied"
        step.finished_at = datetime.now(UTC)
        result = "noop" if step.status == "noop" else "ok"
        self._record(run, "step-outcome", step=step, result=result, after=step.after)
        self.store.save(state)
        run.on_event(
            RunEvent("step-finished", state.run_id, spec.id, step.status, summary=step.summary)
        )

    def _fail_step(self, run: _Run, step: StepState, exc: Exception) -> None:
        step.status = "failed"
        step.uncertain = _may_have_landed(exc)
        step.error = run.redactor.text(_as_console_error(exc))
        step.finished_at = datetime.now(UTC)
        result = "unknown" if step.uncertain else "failed"
        self._record(run, "step-outcome", step=step, result=result, error=step.error)
        self.store.save(run.state)
        run.on_event(
            RunEvent("step-finished", run.state.run_id, step.id, "failed", error=step.error)
        )

    async def _apply_with_policy(
        self,
        action: Action[Any],
        args: Any,
        ctx: ActionContext,
        plan: StepPlan,
        spec: StepSpec,
        step: StepState,
    ) -> Any:
        timeout = parse_duration(spec.timeout).total_seconds()
        retries = spec.retries if action.retry_safe(args) else 0

        async def attempt() -> Any:
            step.attempts += 1
            try:
                return await asyncio.wait_for(action.apply(args, ctx, plan), timeout)
            except TimeoutError:
                raise BackendUnavailable(f"timed out after {spec.timeout}") from None

        return await with_retries(attempt, retries)

    # Compensation ---------------------------------------------------------------------------
    async def _compensate_all(self, run: _Run) -> bool:
        """Undo, in reverse order, every step whose change is (or may be) in place.

        Sets the status to compensated or failed; returns False if the run was interrupted.
        """
        complete = True
        for step in reversed(run.state.steps):
            in_place = step.status in (
                "applied",
                "applying",
                "compensating",
                "compensation-failed",
            ) or (step.status == "failed" and step.uncertain)
            if not in_place:
                continue
            spec = run.loaded.runbook.step(step.id)
            try:
                done = await self._compensate_step(run, spec, step)
            except AuditError as exc:
                self._interrupt(run, f"audit log: {exc}: compensation of {step.id} not run")
                return False
            complete = complete and done
        run.state.status = "compensated" if complete else "failed"
        return True

    async def _compensate_step(self, run: _Run, spec: StepSpec, step: StepState) -> bool:
        state, redactor = run.state, run.redactor
        if spec.compensate == "none":
            step.status = "not-compensated"
            self.store.save(state)
            return True
        run.on_event(RunEvent("compensation-started", state.run_id, step.id))
        self._record(run, "compensate-intent", step=step, result="planned", after=step.before)
        step.status = "compensating"
        self.store.save(state)
        try:
            restored = await self._undo(run, spec, step)
        except Exception as exc:  # noqa: BLE001 - reported, then the next step is undone
            step.status = "compensation-failed"
            step.error = redactor.text(_as_console_error(exc))
            self._record(run, "compensate-outcome", step=step, result="failed", error=step.error)
            self.store.save(state)
            run.on_event(
                RunEvent("compensation-finished", state.run_id, step.id, "failed", error=step.error)
            )
            return False
        step.status = "compensated"
        self._record(
            run, "compensate-outcome", step=step, result="ok", after=redactor(jsonable(restored))
        )
        self.store.save(state)
        run.on_event(RunEvent("compensation-finished", state.run_id, step.id, "compensated"))
        return True

    async def _undo(self, run: _Run, spec: StepSpec, step: StepState) -> Any:
        variables = scope(run.values, run.ctx, _step_scope(run.state))
        where = f"compensation of {spec.id}"
        if spec.compensate == "auto":
            action = ACTIONS[spec.action]
            rendered = render_checked(spec.with_, where, variables, run.redactor)
            args = validate_args(action.Args, rendered, where, run.redactor)
            return await action.compensate(args, run.ctx, step.before, step.after)
        assert not isinstance(spec.compensate, str)
        comp = spec.compensate
        action = ACTIONS[comp.action]
        rendered = render_checked(comp.with_, where, variables, run.redactor)
        args = validate_args(action.Args, rendered, where, run.redactor)
        plan = await action.plan(args, run.ctx)
        return plan.after if plan.noop else await action.apply(args, run.ctx, plan)

    # Crash recovery -------------------------------------------------------------------------
    def unfinished(self) -> list[RunState]:
        return [
            r
            for r in self.store.all()
            if r.effective_status in ("running", "interrupted") or r.status == "failed"
        ]

    async def resume(
        self, run_id: str, given_secrets: dict[str, Any], *, on_event: EventSink = _ignore
    ) -> RunState:
        """Finish an interrupted run: steps already applied are skipped, a step whose outcome
        is unknown is re-planned (kept if its effect is in place, else applied again)."""
        state, loaded, values = self._reload(run_id, given_secrets, "resume")
        undone = [s.id for s in state.steps if s.status.startswith("compensat")]
        if state.status == "failed" or undone:
            raise RunStateError(
                f"run {run_id} was being undone ({', '.join(undone) or 'compensation failed'}); "
                f"finish undoing it with `runbook abort {run_id}`"
            )
        async with self._recovery(state, loaded, values, on_event) as run:
            self._record(run, "run-intent", result="resume", arguments=state.params)
            state.status, state.error = "running", None
            self.store.save(state)
            run.keeper.start()
            await self._guarded(run, self._drive)
        return state

    async def abort(
        self, run_id: str, given_secrets: dict[str, Any], *, on_event: EventSink = _ignore
    ) -> RunState:
        """Undo what an interrupted (or partly compensated) run applied."""
        state, loaded, values = self._reload(run_id, given_secrets, "abort")
        async with self._recovery(state, loaded, values, on_event) as run:
            self._record(run, "run-intent", result="abort", arguments=state.params)
            state.error = "aborted by operator"
            state.status = "running"
            self.store.save(state)

            async def undo(run: _Run) -> None:
                if await self._compensate_all(run):
                    run.state.status = "aborted" if run.state.status == "compensated" else "failed"
                    self._finish(run)

            await self._guarded(run, undo)
        return state

    @contextlib.asynccontextmanager
    async def _recovery(
        self,
        state: RunState,
        loaded: LoadedRunbook,
        values: dict[str, Any],
        on_event: EventSink,
    ) -> AsyncIterator[_Run]:
        redactor = Redactor(secret_values(loaded.runbook, values))
        async with self._context(state.run_id) as ctx:
            locks = ctx.backends.locks
            lease = await locks.take_back(
                state.target,
                self.settings.operator,
                state.run_id,
                self.settings.locks.lease_s,
                state.lease_token,
            )
            keeper = LeaseKeeper(locks, lease)
            state.pid, state.pid_start, state.lease_token = os.getpid(), _own_start(), keeper.token
            try:
                yield _Run(state, loaded, values, redactor, ctx, keeper, on_event)
            finally:
                await keeper.stop(release=state.status != "interrupted")

    def _reload(
        self, run_id: str, given: dict[str, Any], verb: str
    ) -> tuple[RunState, LoadedRunbook, dict[str, Any]]:
        self._refuse_read_only(f"{verb} {run_id}")
        state = self.store.load(run_id)
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
        self.audit.check_writable()
        loaded = load_runbook(Path(state.runbook_path))
        if loaded.sha256 != state.runbook_sha256:
            raise RunStateError(
                f"runbook {state.runbook_path} changed since run {run_id} started; "
                f"{verb} refuses to run a different runbook"
            )
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

    # Shared ---------------------------------------------------------------------------------
    def _refuse_read_only(self, what: str) -> None:
        if self.settings.read_only:
            raise ReadOnlyError(
                f"read-only mode: {what} would change production state and was refused "
                "(plans and --dry-run still work)"
            )

    def _record(
        self,
        run: _Run,
        kind: RecordKind,
        *,
        step: StepState | None = None,
        result: str | None = None,
        arguments: dict[str, Any] | None = None,
        after: Any = None,
        error: str | None = None,
    ) -> None:
        state = run.state
        self.audit.append(
            AuditEvent(
                kind=kind,
                operator=self.settings.operator,
                environment=state.environment,
                run_id=state.run_id,
                runbook=state.runbook,
                step=step.id if step else None,
                action=step.action if step else None,
                target=state.target,
                arguments=arguments if arguments is not None else (step.arguments if step else {}),
                before=step.before if step else None,
                after=run.redactor(after),
                result=result,
                error=run.redactor.text(error) if error else None,
            )
        )

    def _interrupt(self, run: _Run, reason: str) -> None:
        state = run.state
        if state.status == "interrupted":
            return
        state.status = "interrupted"
        state.error = run.redactor.text(reason)
        with contextlib.suppress(ConsoleError):
            self.store.save(state)
        with contextlib.suppress(AuditError):
            self._record(run, "run-outcome", result="interrupted", error=state.error)
        run.on_event(
            RunEvent("run-finished", state.run_id, status="interrupted", error=state.error)
        )

    def _finish(self, run: _Run) -> None:
        state = run.state
        self.store.save(state)
        self._record(
            run, "run-outcome", result=state.status, error=state.error, after=state.outputs or None
        )
        run.on_event(RunEvent("run-finished", state.run_id, status=state.status, error=state.error))


def _step_scope(state: RunState) -> dict[str, dict[str, Any]]:
    return {s.id: {"before": s.before, "after": s.after} for s in state.steps}


def _own_start() -> int | None:
    return start_ticks(os.getpid())


def _may_have_landed(exc: BaseException) -> bool:
    """A timeout, a dropped connection, a 5xx or an unexpected error may come after the
    change was made; a 4xx or a validation error means the backend refused it."""
    if isinstance(exc, BackendUnavailable):
        return True
    if isinstance(exc, BackendResponseError):
        return exc.status is None or exc.status >= 500
    return not isinstance(exc, ConsoleError)


def _as_console_error(exc: BaseException) -> ConsoleError:
    if isinstance(exc, ConsoleError):
        return exc
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return RunbookError(f"unexpected {type(exc).__name__}{': ' + text if text else ''}")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 160 else text[:157] + "..."
