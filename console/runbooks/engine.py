"""The runbook engine: plan, confirm, lock, re-check, audit intent, apply, audit outcome.

It never imports a UI. The CLI and the TUI call the same methods and get the same audit
records; progress arrives through an ``on_event`` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from console.adapters.locks import Lease, LockService
from console.adapters.retry import with_retries
from console.audit.log import AuditLog
from console.audit.records import AuditEvent, RecordKind
from console.config import Settings
from console.errors import (
    AdapterError,
    AuditError,
    BackendUnavailable,
    ConfirmationRequired,
    ConsoleError,
    ParameterError,
    PreconditionFailed,
    ReadOnlyError,
    RunStateError,
    StalePlanError,
)
from console.runbooks.actions import ACTIONS, CHECKS, Action, ActionContext, StepPlan
from console.runbooks.backends import Backends
from console.runbooks.durations import parse_duration
from console.runbooks.loader import LoadedRunbook, load_runbook
from console.runbooks.model import StepSpec
from console.runbooks.params import jsonable, public_params, redact, resolve, secret_values
from console.runbooks.state import RunState, RunStore, StepState, new_run_id
from console.runbooks.template import TemplateError, references, render


@dataclass
class PlannedStep:
    spec: StepSpec
    arguments: dict[str, Any]
    """Rendered and redacted: what the screen and the audit log may show."""
    plan: StepPlan | None
    """None when the step's arguments come from an earlier step's result."""
    depends_on: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "id": self.spec.id,
            "action": self.spec.action,
            "arguments": self.arguments,
            "summary": plan.summary if plan else f"planned when it runs (uses {self.depends_on})",
            "before": plan.before if plan else None,
            "after": plan.after if plan else None,
            "noop": plan.noop if plan else False,
            "requests": plan.requests if plan else [],
            "timeout": self.spec.timeout,
            "retries": self.spec.retries,
            "compensate": self.spec.compensate
            if isinstance(self.spec.compensate, str)
            else self.spec.compensate.action,
        }


@dataclass
class RunPlan:
    run_id: str
    loaded: LoadedRunbook
    values: dict[str, Any]
    secrets: list[str]
    target: str
    steps: list[PlannedStep]
    operator: str
    environment: str

    @property
    def public_params(self) -> dict[str, Any]:
        public: dict[str, Any] = jsonable(public_params(self.loaded.runbook, self.values))
        return public

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "runbook": self.loaded.runbook.name,
            "target": self.target,
            "operator": self.operator,
            "environment": self.environment,
            "params": self.public_params,
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass
class RunEvent:
    kind: str
    """planned, locked, step-started, step-finished, compensation-started,
    compensation-finished, run-finished."""
    run_id: str
    step: str | None = None
    status: str | None = None
    summary: str = ""
    error: str | None = None


EventSink = Callable[[RunEvent], None]


def _ignore(event: RunEvent) -> None:
    return None


class _LeaseKeeper:
    """Renews the run's lease in the background; remembers if it was lost."""

    def __init__(self, locks: LockService, lease: Lease) -> None:
        self._locks = locks
        self.lease = lease
        self.lost: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        interval = max(0.05, self.lease.lease_ms / 3000)
        while self.lost is None:
            await asyncio.sleep(interval)
            await self.check()

    async def check(self) -> None:
        try:
            if not await self._locks.renew(self.lease):
                holder = await self._locks.holder(self.lease.target)
                who = (
                    f"now held by {holder.operator} (run {holder.run_id})" if holder else "expired"
                )
                self.lost = f"lost the lock on {self.lease.target} ({who})"
        except AdapterError as exc:
            self.lost = f"cannot renew the lock on {self.lease.target}: {exc}"

    async def stop(self, release: bool) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if release and self.lost is None:
            with contextlib.suppress(AdapterError):
                await self._locks.release(self.lease)


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
        runbook = loaded.runbook
        values = resolve(runbook, given)
        run_id = new_run_id()
        async with self._context(run_id) as ctx:
            return await self._plan(loaded, values, run_id, ctx)

    async def _plan(
        self, loaded: LoadedRunbook, values: dict[str, Any], run_id: str, ctx: ActionContext
    ) -> RunPlan:
        runbook = loaded.runbook
        secrets = secret_values(runbook, values)
        scope = self._scope(values, run_id, {})
        target = str(render(runbook.target, scope))
        for pre in runbook.preconditions:
            check = CHECKS[pre.check]
            args = _validate(check.Args, render(pre.with_, scope), f"precondition {pre.check}")
            problem = await check.check(args, ctx)
            if problem:
                raise PreconditionFailed(
                    f"precondition {pre.check} failed: {pre.message or problem}"
                )
        steps = []
        for spec in runbook.steps:
            depends = sorted(
                {r.split(".")[1] for r in references(spec.with_) if r.startswith("steps.")}
            )
            if depends:
                steps.append(PlannedStep(spec, redact(spec.with_, secrets), None, depends))
                continue
            action = ACTIONS[spec.action]
            rendered = render(spec.with_, scope)
            args = _validate(action.Args, rendered, f"step {spec.id}")
            plan = await action.plan(args, ctx)
            plan.requests = redact(plan.requests, secrets)
            steps.append(PlannedStep(spec, _public(rendered, secrets), plan))
        return RunPlan(
            run_id=run_id,
            loaded=loaded,
            values=values,
            secrets=secrets,
            target=target,
            steps=steps,
            operator=self.settings.operator,
            environment=self.settings.environment,
        )

    def _scope(
        self, values: dict[str, Any], run_id: str, steps: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "params": values,
            "steps": steps,
            "run": {
                "id": run_id,
                "operator": self.settings.operator,
                "environment": self.settings.environment,
            },
        }

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
            steps=[StepState(id=s.spec.id, action=s.spec.action) for s in plan.steps],
        )
        async with self._context(plan.run_id) as ctx:
            locks = ctx.backends.locks
            lease = await locks.acquire(
                plan.target, plan.operator, plan.run_id, self.settings.locks.lease_s
            )
            keeper = _LeaseKeeper(locks, lease)
            try:
                await self._recheck(plan, ctx)
                on_event(RunEvent("locked", plan.run_id, summary=f"locked {plan.target}"))
                self._record(
                    state,
                    "run-intent",
                    result="planned",
                    arguments=state.params,
                    after=[s.to_dict()["summary"] for s in plan.steps],
                )
                self.store.save(state)
                keeper.start()
                await self._drive(
                    state, plan.loaded, plan.values, plan.secrets, ctx, keeper, on_event
                )
            finally:
                await keeper.stop(release=_keeps_no_lease(state))
        return state

    async def _recheck(self, plan: RunPlan, ctx: ActionContext) -> None:
        """Terraform-style: refuse to apply a plan whose 'before' no longer holds."""
        for planned in plan.steps:
            if planned.plan is None:
                continue
            action = ACTIONS[planned.spec.action]
            scope = self._scope(plan.values, plan.run_id, {})
            args = _validate(action.Args, render(planned.spec.with_, scope), planned.spec.id)
            now = await action.plan(args, ctx)
            was = action.stale_fields(planned.plan.before)
            is_ = action.stale_fields(now.before)
            if jsonable(was) != jsonable(is_):
                raise StalePlanError(
                    f"step {planned.spec.id}: {plan.target} changed since the plan "
                    f"(was {_short(was)}, now {_short(is_)}); nothing was applied, plan again"
                )

    async def _drive(
        self,
        state: RunState,
        loaded: LoadedRunbook,
        values: dict[str, Any],
        secrets: list[str],
        ctx: ActionContext,
        keeper: _LeaseKeeper,
        on_event: EventSink,
    ) -> None:
        """Apply the pending steps in order; on failure compensate what was applied."""
        runbook = loaded.runbook
        failure: str | None = None
        for spec in runbook.steps:
            step = state.step(spec.id)
            if step.status in ("applied", "noop"):
                continue
            await keeper.check()
            if keeper.lost:
                self._interrupt(state, f"{keeper.lost}: stopped before step {spec.id}", on_event)
                return
            try:
                await self._apply_step(state, spec, values, secrets, ctx, on_event)
            except AuditError as exc:
                self._interrupt(state, f"audit log: {exc}: stopped before step {spec.id}", on_event)
                return
            except ConsoleError as exc:
                failure = f"step {spec.id} failed: {exc}"
                break
        if failure is None:
            scope = self._scope(values, state.run_id, self._step_scope(state))
            try:
                state.outputs = jsonable(render(runbook.outputs, scope))
            except TemplateError as exc:
                state.outputs = {"error": str(exc)}
            state.status = "succeeded"
        else:
            state.error = failure
            await self._compensate_all(state, loaded, values, secrets, ctx, on_event)
            if state.status == "interrupted":
                return
        self._finish(state, on_event)

    async def _apply_step(
        self,
        state: RunState,
        spec: StepSpec,
        values: dict[str, Any],
        secrets: list[str],
        ctx: ActionContext,
        on_event: EventSink,
    ) -> None:
        step = state.step(spec.id)
        action = ACTIONS[spec.action]
        scope = self._scope(values, state.run_id, self._step_scope(state))
        try:
            rendered = render(spec.with_, scope)
        except TemplateError as exc:
            raise ParameterError(f"step {spec.id}: {exc}") from None
        args = _validate(action.Args, rendered, f"step {spec.id}")
        step.arguments = _public(rendered, secrets)
        plan = await action.plan(args, ctx)  # fresh: the before-state compensation restores
        resumed_unknown = step.status == "applying"
        step.summary = redact(plan.summary, secrets)
        if not resumed_unknown:
            step.before = jsonable(plan.before)
        on_event(RunEvent("step-started", state.run_id, spec.id, summary=step.summary))
        self._record(state, "step-intent", step=step, result="planned", after=jsonable(plan.after))
        step.status = "applying"
        step.started_at = datetime.now(UTC)
        self.store.save(state)
        if plan.noop:
            step.status = "applied" if resumed_unknown else "noop"
            step.after = jsonable(plan.after)
            result = "ok" if resumed_unknown else "noop"
        else:
            try:
                step.after = jsonable(
                    await self._apply_with_policy(action, args, ctx, plan, spec, step)
                )
            except ConsoleError as exc:
                step.status = "failed"
                step.error = redact(str(exc), secrets)
                step.finished_at = datetime.now(UTC)
                self._record(state, "step-outcome", step=step, result="failed", error=step.error)
                self.store.save(state)
                on_event(
                    RunEvent("step-finished", state.run_id, spec.id, "failed", error=step.error)
                )
                raise
            step.status = "applied"
            result = "ok"
        step.finished_at = datetime.now(UTC)
        self._record(state, "step-outcome", step=step, result=result, after=step.after)
        self.store.save(state)
        on_event(
            RunEvent("step-finished", state.run_id, spec.id, step.status, summary=step.summary)
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
    async def _compensate_all(
        self,
        state: RunState,
        loaded: LoadedRunbook,
        values: dict[str, Any],
        secrets: list[str],
        ctx: ActionContext,
        on_event: EventSink,
    ) -> None:
        """Undo applied steps in reverse order. Sets state.status to compensated or failed."""
        complete = True
        for step in reversed(state.steps):
            if step.status not in ("applied", "applying", "compensation-failed"):
                continue
            spec = loaded.runbook.step(step.id)
            try:
                done = await self._compensate_step(
                    state, spec, step, values, secrets, ctx, on_event
                )
            except AuditError as exc:
                self._interrupt(
                    state, f"audit log: {exc}: compensation of {step.id} not run", on_event
                )
                return
            complete = complete and done
        state.status = "compensated" if complete else "failed"

    async def _compensate_step(
        self,
        state: RunState,
        spec: StepSpec,
        step: StepState,
        values: dict[str, Any],
        secrets: list[str],
        ctx: ActionContext,
        on_event: EventSink,
    ) -> bool:
        if spec.compensate == "none":
            step.status = "not-compensated"
            self.store.save(state)
            return True
        scope = self._scope(values, state.run_id, self._step_scope(state))
        on_event(RunEvent("compensation-started", state.run_id, step.id))
        self._record(state, "compensate-intent", step=step, result="planned", after=step.before)
        step.status = "compensating"
        self.store.save(state)
        try:
            if spec.compensate == "auto":
                action = ACTIONS[spec.action]
                args = _validate(action.Args, render(spec.with_, scope), f"step {spec.id}")
                restored = await action.compensate(args, ctx, step.before, step.after)
            else:
                comp = spec.compensate
                action = ACTIONS[comp.action]
                args = _validate(action.Args, render(comp.with_, scope), f"compensation {spec.id}")
                plan = await action.plan(args, ctx)
                restored = plan.after if plan.noop else await action.apply(args, ctx, plan)
        except (ConsoleError, TemplateError) as exc:
            step.status = "compensation-failed"
            step.error = redact(str(exc), secrets)
            self._record(state, "compensate-outcome", step=step, result="failed", error=step.error)
            self.store.save(state)
            on_event(
                RunEvent("compensation-finished", state.run_id, step.id, "failed", error=step.error)
            )
            return False
        step.status = "compensated"
        self._record(state, "compensate-outcome", step=step, result="ok", after=jsonable(restored))
        self.store.save(state)
        on_event(RunEvent("compensation-finished", state.run_id, step.id, "compensated"))
        return True

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
        state, loaded, values, secrets = self._reload(run_id, given_secrets, "resume")
        async with self._context(run_id) as ctx:
            keeper = await self._retake(state, ctx)
            try:
                self._record(state, "run-intent", result="resume", arguments=state.params)
                state.status = "running"
                state.error = None
                self.store.save(state)
                keeper.start()
                await self._drive(state, loaded, values, secrets, ctx, keeper, on_event)
            finally:
                await keeper.stop(release=_keeps_no_lease(state))
        return state

    async def abort(
        self, run_id: str, given_secrets: dict[str, Any], *, on_event: EventSink = _ignore
    ) -> RunState:
        state, loaded, values, secrets = self._reload(run_id, given_secrets, "abort")
        async with self._context(run_id) as ctx:
            keeper = await self._retake(state, ctx)
            try:
                self._record(state, "run-intent", result="abort", arguments=state.params)
                state.error = "aborted by operator"
                await self._compensate_all(state, loaded, values, secrets, ctx, on_event)
                if state.status != "interrupted":
                    state.status = "aborted" if state.status == "compensated" else "failed"
                    self._finish(state, on_event)
            finally:
                await keeper.stop(release=_keeps_no_lease(state))
        return state

    def _reload(
        self, run_id: str, given: dict[str, Any], verb: str
    ) -> tuple[RunState, LoadedRunbook, dict[str, Any], list[str]]:
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
        values = resolve(loaded.runbook, merged)
        return state, loaded, values, secret_values(loaded.runbook, values)

    async def _retake(self, state: RunState, ctx: ActionContext) -> _LeaseKeeper:
        locks = ctx.backends.locks
        lease = await locks.acquire(
            state.target, self.settings.operator, state.run_id, self.settings.locks.lease_s
        )
        state.pid = os.getpid()
        return _LeaseKeeper(locks, lease)

    # Shared ---------------------------------------------------------------------------------
    def _refuse_read_only(self, what: str) -> None:
        if self.settings.read_only:
            raise ReadOnlyError(
                f"read-only mode: {what} would change production state and was refused "
                "(plans and --dry-run still work)"
            )

    def _record(
        self,
        state: RunState,
        kind: RecordKind,
        *,
        step: StepState | None = None,
        result: str | None = None,
        arguments: dict[str, Any] | None = None,
        after: Any = None,
        error: str | None = None,
    ) -> None:
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
                after=after,
                result=result,
                error=error,
            )
        )

    def _interrupt(self, state: RunState, reason: str, on_event: EventSink) -> None:
        state.status = "interrupted"
        state.error = reason
        with contextlib.suppress(ConsoleError):
            self.store.save(state)
        with contextlib.suppress(AuditError):
            self._record(state, "run-outcome", result="interrupted", error=reason)
        on_event(RunEvent("run-finished", state.run_id, status="interrupted", error=reason))

    def _finish(self, state: RunState, on_event: EventSink) -> None:
        self.store.save(state)
        self._record(
            state,
            "run-outcome",
            result=state.status,
            error=state.error,
            after=state.outputs or None,
        )
        on_event(RunEvent("run-finished", state.run_id, status=state.status, error=state.error))

    @staticmethod
    def _step_scope(state: RunState) -> dict[str, dict[str, Any]]:
        return {s.id: {"before": s.before, "after": s.after} for s in state.steps}


def _keeps_no_lease(state: RunState) -> bool:
    """An interrupted run keeps its lease until it expires, so nobody acts on a half-done
    target before someone looks at it (resume or abort take it back by run id)."""
    return state.status != "interrupted"


def _validate(model: Any, data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(args)'}: {e['msg']}" for e in exc.errors()
        ]
        raise ParameterError(f"{where}: " + "; ".join(problems)) from None
    except ConsoleError:
        raise


def _public(rendered: Any, secrets: list[str]) -> dict[str, Any]:
    value = redact(jsonable(rendered), secrets)
    return value if isinstance(value, dict) else {"value": value}


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."
