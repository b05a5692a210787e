"""`runbook resume RUN_ID` of an approved run that nobody waits for (its requester closed the
terminal, or a scheduler asked): planned again from the request's runbook file and parameters,
as the operator who resumes it, and applied only if the runbook file and every step's state are
still the ones that were approved."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from console.errors import ApprovalError, ParameterError, StalePlanError
from console.runbooks.approval_seal import check_decision
from console.runbooks.approvals import ApprovalRequirement, approval_required, not_usable
from console.runbooks.engine_services import EngineServices
from console.runbooks.events import EventSink
from console.runbooks.loader import load_runbook
from console.runbooks.params import REDACTED, Redactor, resolve, secret_values
from console.runbooks.planning import make_plan
from console.runbooks.running import run_plan
from console.runbooks.state import RunState


async def run_approved_request(
    services: EngineServices, run_id: str, given_secrets: dict[str, Any], on_event: EventSink
) -> RunState:
    async with services.approvals() as approvals:
        record = await approvals.get(run_id)
    if record.status != "approved":
        raise not_usable(record)
    check_decision(services.audit.require_key(), record)  # the path and params it will run
    if any(r.kind in ("approval-use", "run-intent") for r in services.audit.records(run_id)):
        raise ApprovalError(
            f"run {run_id} already ran with this approval (see `audit show {run_id}`); an "
            "approval runs once, nothing was changed"
        )
    loaded = load_runbook(Path(record.runbook_path), services.settings)
    if loaded.sha256 != record.runbook_sha256:
        raise StalePlanError(
            f"{record.runbook_path} changed since run {run_id} was approved; nothing was "
            "changed, plan and request approval again"
        )
    secret = {name for name, spec in loaded.runbook.parameters.items() if spec.secret}
    not_secret = sorted(set(given_secrets) - secret)
    if not_secret:
        raise ParameterError(
            f"only secret parameters are given again on resume, not {', '.join(not_secret)}: "
            "the others are the approved ones"
        )
    given = {k: v for k, v in record.params.items() if k not in secret or v != REDACTED}
    given |= given_secrets
    values = resolve(loaded.runbook, given)
    redactor = Redactor(secret_values(loaded.runbook, values))
    async with services.action_context(run_id) as ctx:
        plan = await make_plan(loaded, values, redactor, ctx)
    # The approval is used even if the rule that asked for it changed since.
    need = approval_required(plan, services.settings) or ApprovalRequirement(
        record.why, timedelta(0), []
    )
    return await run_plan(services, plan, confirmed=True, on_event=on_event, approval=need)
