"""The runbook engine: plan, confirm, lock, re-check, audit intent, apply, audit outcome.

It never imports a UI. The CLI and the TUI call the same methods and get the same audit
records; progress arrives through an ``on_event`` callback. The work is done in
``running`` (applying a plan), ``compensation`` (undoing it) and ``recovery`` (resuming or
aborting an interrupted run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from console.adapters.approval_store import ApprovalRecord
from console.runbooks.approval_runs import run_approved_request
from console.runbooks.approvals import ApprovalRequirement, approval_required
from console.runbooks.engine_services import EngineServices
from console.runbooks.events import EventSink, RunEvent, ignore_events
from console.runbooks.loader import LoadedRunbook
from console.runbooks.params import Redactor, resolve, secret_values
from console.runbooks.planning import RunPlan, make_plan
from console.runbooks.recovery import abort_run, resume_run, unfinished_runs
from console.runbooks.running import run_plan
from console.runbooks.state import RunState, new_run_id

__all__ = ["RunEvent", "RunPlan", "RunbookEngine"]


class RunbookEngine(EngineServices):
    async def plan(
        self, loaded: LoadedRunbook, given: dict[str, Any], *, run_id: str | None = None
    ) -> RunPlan:
        """Resolve parameters, check preconditions and read the real state of every step."""
        values = resolve(loaded.runbook, given)
        redactor = Redactor(secret_values(loaded.runbook, values))
        async with self.action_context(run_id or new_run_id()) as ctx:
            return await make_plan(loaded, values, redactor, ctx)

    def approval_for(self, plan: RunPlan) -> ApprovalRequirement | None:
        """Whether the plan must be approved by another operator before it runs."""
        return approval_required(plan, self.settings)

    async def request_approval(self, plan: RunPlan, need: ApprovalRequirement) -> ApprovalRecord:
        async with self.approvals() as approvals:
            return await approvals.request(plan, need)

    async def wait_for_approval(
        self, run_id: str, on_tick: Callable[[ApprovalRecord], None] | None = None
    ) -> ApprovalRecord:
        async with self.approvals() as approvals:
            return await approvals.wait(run_id, on_tick)

    async def run(
        self, plan: RunPlan, *, confirmed: bool, on_event: EventSink = ignore_events
    ) -> RunState:
        """Apply a plan. Refuses in read-only mode, without confirmation, without the approval
        it needs, on a held lock, on a stale plan, and when the audit log cannot be written."""
        need = approval_required(plan, self.settings)
        return await run_plan(self, plan, confirmed=confirmed, on_event=on_event, approval=need)

    async def run_approved(
        self, run_id: str, given_secrets: dict[str, Any], *, on_event: EventSink = ignore_events
    ) -> RunState:
        """Apply an approved run that nobody waits for (`runbook resume RUN_ID`): planned again
        from the request's runbook and parameters, refused if either changed since."""
        return await run_approved_request(self, run_id, given_secrets, on_event)

    def unfinished(self) -> list[RunState]:
        return unfinished_runs(self.store)

    async def resume(
        self, run_id: str, given_secrets: dict[str, Any], *, on_event: EventSink = ignore_events
    ) -> RunState:
        """Finish an interrupted run: steps already applied are skipped, a step whose outcome
        is unknown is re-planned (kept if its effect is in place, else applied again)."""
        return await resume_run(self, run_id, given_secrets, on_event)

    async def abort(
        self, run_id: str, given_secrets: dict[str, Any], *, on_event: EventSink = ignore_events
    ) -> RunState:
        """Undo what an interrupted (or partly compensated) run applied."""
        return await abort_run(self, run_id, given_secrets, on_event)
