"""A run in progress, and the traces it leaves: audit records, saved state, progress events."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from console.audit.records import AuditEvent, RecordKind
from console.errors import AuditError, ConsoleError, RunStateError
from console.runbooks.actions import Action, ActionContext
from console.runbooks.engine_services import EngineServices
from console.runbooks.events import EventSink, RunEvent
from console.runbooks.lease import LeaseKeeper
from console.runbooks.loader import LoadedRunbook
from console.runbooks.params import Redactor
from console.runbooks.planning import render_checked, scope, validate_args
from console.runbooks.state import RunState, StepState


@dataclass
class ActiveRun:
    """Everything one execution needs, so the step functions take one argument."""

    services: EngineServices
    state: RunState
    loaded: LoadedRunbook
    values: dict[str, Any]
    redactor: Redactor
    ctx: ActionContext
    keeper: LeaseKeeper
    on_event: EventSink
    keep_lease: bool = False
    """Set when the run stops half-done: its leases stay until they expire, for `resume` or
    `abort` to take back, so nobody acts on a half-done target before someone looks."""

    def variables(self) -> dict[str, Any]:
        """What templates see now: the parameters, the run, and every step's before/after."""
        steps = {s.id: {"before": s.before, "after": s.after} for s in self.state.steps}
        return scope(self.values, self.ctx, steps)

    def arguments(self, action: Action[Any], template: Any, where: str) -> Any:
        """``template`` rendered with the current variables and checked against ``action``."""
        rendered = render_checked(template, where, self.variables(), self.redactor)
        return validate_args(action.Args, rendered, where, self.redactor, self.ctx)

    def emit(self, event: RunEvent) -> None:
        """Tell the UI. Output never decides whether a run completes: a sink that fails (a
        closed pipe, a dead screen, Rich's exit on a broken pipe) loses the event, not the run.
        Ctrl-C still stops the run (interrupted, see ``guarded``)."""
        with contextlib.suppress(Exception, SystemExit):
            self.on_event(event)

    def save(self) -> None:
        """Persist the state; raises RunStateError (see ``state_lost``)."""
        self.services.store.save(self.state)

    def record(
        self,
        kind: RecordKind,
        *,
        step: StepState | None = None,
        result: str | None = None,
        arguments: dict[str, Any] | None = None,
        after: Any = None,
        error: str | None = None,
    ) -> None:
        state = self.state
        self.services.audit.append(
            AuditEvent(
                kind=kind,
                operator=self.services.settings.operator,
                environment=state.environment,
                run_id=state.run_id,
                runbook=state.runbook,
                step=step.id if step else None,
                action=step.action if step else None,
                target=state.target,
                arguments=arguments if arguments is not None else (step.arguments if step else {}),
                before=step.before if step else None,
                after=self.redactor(after),
                result=result,
                error=self.redactor.text(error) if error else None,
            )
        )

    def interrupt(self, reason: str) -> None:
        """Mark the run interrupted; it keeps its lease, for `resume` or `abort` to take."""
        state = self.state
        self.keep_lease = True
        if state.status == "interrupted":
            return
        state.status = "interrupted"
        state.error = self.redactor.text(reason)
        with contextlib.suppress(ConsoleError):
            self.save()
        with contextlib.suppress(AuditError):
            self.record("run-outcome", result="interrupted", error=state.error)
        self.emit(RunEvent("run-finished", state.run_id, status="interrupted", error=state.error))

    def state_lost(self, exc: RunStateError, where: str) -> None:
        """The state could not be saved: nothing more is applied (not even an undo: a change
        nobody could find again in `runbook status`), and the run's intent gets its outcome.

        The state on disk is the last one saved: once the folder is writable again, the run
        shows as interrupted and `resume` or `abort` finish it. Its leases are kept if
        something was applied."""
        state = self.state
        applied = [s.id for s in state.steps if s.in_place]
        left = f"; applied and not undone: {', '.join(applied)}" if applied else ""
        state.status = "failed"
        state.error = self.redactor.text(f"{exc}: stopped {where}{left}")
        self.keep_lease = bool(applied)
        with contextlib.suppress(AuditError):
            self.record("run-outcome", result="failed", error=state.error)
        self.emit(RunEvent("run-finished", state.run_id, status="failed", error=state.error))

    def finish(self) -> None:
        state = self.state
        try:
            self.save()
        except RunStateError as exc:
            # Every step is done: the outcome is still what happened, with why the saved
            # state lags behind (it shows as interrupted; `resume` completes it).
            note = f"run state not saved: {exc}"
            state.error = self.redactor.text(f"{state.error}; {note}" if state.error else note)
        self.record(
            "run-outcome", result=state.status, error=state.error, after=state.outputs or None
        )
        self.emit(RunEvent("run-finished", state.run_id, status=state.status, error=state.error))
