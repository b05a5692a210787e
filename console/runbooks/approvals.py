"""Two-person approval of runbook runs, as Rundeck's approval step and StackStorm's inquiries.

A run that needs approval (its runbook's ``approval:``, or the context's ``[approvals]``) stops
after its plan with a request in Redis (``console.adapters.approval_store``) and waits. Another
operator approves or denies it; nobody approves their own run; the ACL's ``approve`` and the
request's approvers say who else may. A request is valid for its ttl, pending or approved; the
first console to see it past its ttl marks it expired. An approved request is used once: by the
run that waits for it, or by ``runbook resume RUN_ID``. Every request, approval, denial and
expiry is a record in the audit chain, naming the operator. Approval never skips a check: the
approved run goes through the ACL and the stale-plan check like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from console import acl
from console.adapters.approval_store import ApprovalRecord, ApprovalStatus, ApprovalStore
from console.audit.log import AuditLog
from console.audit.records import AuditEvent, RecordKind
from console.config import Settings
from console.durations import format_duration, parse_duration
from console.errors import (
    AccessDenied,
    ApprovalDenied,
    ApprovalError,
    ApprovalExpired,
    ApprovalPending,
    AuditError,
    ParameterError,
    ReadOnlyError,
    RunNotFound,
    StalePlanError,
)
from console.runbooks.approval_seal import (
    check_decision,
    check_request,
    seal_decision,
    seal_request,
)
from console.runbooks.planning import RunPlan
from console.runbooks.resources import split_target

REASON_LIMIT = 500


@dataclass(frozen=True)
class ApprovalRequirement:
    why: str
    ttl: timedelta
    approvers: list[str]


def approval_required(plan: RunPlan, settings: Settings) -> ApprovalRequirement | None:
    """Whether ``plan`` must be approved first: by its runbook's rule, else by the context's
    (``changes``: a step that is not a no-op; a step planned only when it runs counts)."""
    runbook = plan.loaded.runbook
    rule = settings.approvals
    spec = runbook.approval
    if spec is not None and spec.required:
        return ApprovalRequirement(
            f"runbook {runbook.name} requires approval",
            parse_duration(spec.ttl),
            list(spec.approvers or rule.approvers),
        )
    changes = any(step.plan is None or not step.plan.noop for step in plan.steps)
    if rule.required == "always" or (rule.required == "changes" and changes):
        what = "every run" if rule.required == "always" else "every run that changes something"
        where = f"context {settings.context} ({settings.environment})"
        return ApprovalRequirement(
            f"{where} requires approval for {what}", rule.ttl, list(rule.approvers)
        )
    return None


def _now() -> datetime:
    return datetime.now(UTC)


class Approvals:
    """The requests of one context, decided by ``settings.operator``."""

    def __init__(self, settings: Settings, audit: AuditLog, store: ApprovalStore) -> None:
        self.settings = settings
        self.audit = audit
        self.store = store

    @property
    def operator(self) -> str:
        return self.settings.operator

    # The requester's side ------------------------------------------------------------------
    async def request(self, plan: RunPlan, need: ApprovalRequirement) -> ApprovalRecord:
        """Store the request and its audit record (or neither)."""
        self._refuse_read_only(f"requesting approval of {plan.loaded.runbook.name}")
        self.audit.check_writable()
        runbook = plan.loaded.runbook
        created = _now()
        record = ApprovalRecord(
            run_id=plan.run_id,
            runbook=runbook.name,
            runbook_path=str(plan.loaded.path),
            runbook_sha256=plan.loaded.sha256,
            tags=list(runbook.tags),
            target=plan.target,
            targets=split_target(plan.target),
            params=plan.public_params,
            plan=plan.to_dict(),
            fingerprints={step.spec.id: step.fingerprint for step in plan.steps},
            requester=plan.operator,
            environment=plan.environment,
            context=self.settings.context,
            why=need.why,
            approvers=need.approvers,
            created_at=created,
            expires_at=created + need.ttl,
        )
        record = seal_request(self.audit.require_key(), record)
        await self.store.create(record)
        try:
            self._record("approval-request", record, result="pending", after=_offer(record))
        except AuditError:
            await self.store.delete(record.run_id)  # no request without its record
            raise
        return record

    async def wait(
        self, run_id: str, on_tick: Callable[[ApprovalRecord], None] | None = None
    ) -> ApprovalRecord:
        """Until the request is decided or expires; returns it as it then is. Woken by the
        store's change notices; read again every ``poll_s`` too, in case one is lost."""
        async with self.store.changes() as next_change:
            while True:
                record = await self.get(run_id)
                if record.status != "pending":
                    return record
                if on_tick is not None:
                    on_tick(record)
                poll = self.settings.approvals.poll_s
                await next_change(min(poll, max(record.left_s(), 0.05)))

    async def claim_plan(self, plan: RunPlan, need: ApprovalRequirement) -> ApprovalRecord:
        """Take the approved request of ``plan`` as it is about to apply: used once, and only
        for the runbook file and the step states that were approved."""
        try:
            record = await self.get(plan.run_id)
        except RunNotFound:
            raise ApprovalPending(
                f"{need.why}: run {plan.run_id} has no approval request; nothing was changed"
            ) from None
        if record.status == "approved":
            if record.runbook_sha256 != plan.loaded.sha256:
                raise StalePlanError(
                    f"the runbook {record.runbook} changed since run {record.run_id} was "
                    "approved; nothing was changed, plan and request approval again"
                )
            planned = {step.spec.id: step.fingerprint for step in plan.steps}
            if planned != record.fingerprints:
                raise StalePlanError(
                    f"{record.target} changed since run {record.run_id} was approved; "
                    "nothing was changed, plan and request approval again"
                )
        return await self.claim(plan.run_id)

    async def claim(self, run_id: str) -> ApprovalRecord:
        """Take an approved request for the run about to apply it: it is used once."""
        while True:
            record, raw = await self.store.read(run_id)
            record = await self._expire_if_due(record, raw) or record
            if record.status != "approved":
                raise _not_usable(record)
            check_decision(self.audit.require_key(), record)
            used = record.model_copy(
                update={"status": "used", "used_by": self.operator, "used_at": _now()}
            )
            if await self.store.replace(raw, used):
                return used

    # The approver's side -------------------------------------------------------------------
    async def approve(self, run_id: str) -> ApprovalRecord:
        return await self._decide(run_id, "approved", None)

    async def deny(self, run_id: str, reason: str) -> ApprovalRecord:
        reason = " ".join(reason.split())
        if not reason:
            raise ParameterError("a denial needs a reason (--reason TEXT)")
        if len(reason) > REASON_LIMIT or not reason.isprintable():
            raise ParameterError(f"the reason must be 1-{REASON_LIMIT} printable characters")
        return await self._decide(run_id, "denied", reason)

    async def _decide(
        self, run_id: str, status: ApprovalStatus, reason: str | None
    ) -> ApprovalRecord:
        verb = "approve" if status == "approved" else "deny"
        self._refuse_read_only(f"{verb} run {run_id}")
        while True:
            record, raw = await self.store.read(run_id)
            record = await self._expire_if_due(record, raw) or record
            if record.status != "pending":
                raise _already(record)
            key = self.audit.require_key()
            check_request(key, record)
            withdrawing = status == "denied" and record.requester == self.operator
            if not withdrawing:
                self._may_decide(record, verb)
            self.audit.check_writable()
            decided = seal_decision(
                key,
                record.model_copy(
                    update={
                        "status": status,
                        "decided_by": self.operator,
                        "decided_at": _now(),
                        "reason": reason,
                    }
                ),
            )
            if not await self.store.replace(raw, decided):
                continue  # decided or expired meanwhile: read it again
            kind: RecordKind = "approval-approve" if status == "approved" else "approval-deny"
            result = "withdrawn" if withdrawing else status
            try:
                self._record(kind, decided, result=result, arguments={"reason": reason or ""})
            except AuditError:
                await self.store.replace(decided.model_dump_json(), record)  # undo: still pending
                raise
            return decided

    def _may_decide(self, record: ApprovalRecord, verb: str) -> None:
        """The two-person rule, the request's approvers, then the ACL's ``approve``."""
        me = self.operator
        if record.requester == me:
            raise AccessDenied(
                f"{me} requested run {record.run_id}: another operator must {verb} it "
                "(two-person rule); nothing was changed"
            )
        policy = acl.load_policy(self.settings.acl.path) if self.settings.acl.path else None
        groups = policy.groups if policy else {}
        if record.approvers and not _named(record.approvers, me, groups):
            raise AccessDenied(
                f"{me} is not an approver of run {record.run_id} (approvers: "
                f"{', '.join(record.approvers)}); nothing was changed"
            )
        acl.check(
            self.settings.acl.path, me, "approve", record.runbook, record.tags, record.targets
        )

    # Everyone ------------------------------------------------------------------------------
    async def get(self, run_id: str) -> ApprovalRecord:
        record, raw = await self.store.read(run_id)
        return await self._expire_if_due(record, raw) or record

    async def newest(self) -> list[ApprovalRecord]:
        """Every request still kept, newest first; a pending one past its ttl is expired here."""
        found = []
        for record in await self.store.newest():
            if record.status in ("pending", "approved") and record.expired():
                record = await self.get(record.run_id)
            found.append(record)
        return found

    async def pending(self) -> list[ApprovalRecord]:
        return [record for record in await self.newest() if record.status == "pending"]

    async def _expire_if_due(self, record: ApprovalRecord, raw: str) -> ApprovalRecord | None:
        """Mark a pending or approved request past its ttl expired; the console that wins the
        compare-and-set writes the audit record (once, whoever notices first)."""
        if record.status not in ("pending", "approved") or not record.expired():
            return None
        expired = record.model_copy(update={"status": "expired"})
        if await self.store.replace(raw, expired):
            self._record(
                "approval-expire",
                expired,
                result="expired",
                arguments={"requester": record.requester, "was": record.status},
            )
            return expired
        fresh, _ = await self.store.read(record.run_id)
        return fresh

    def _record(
        self,
        kind: RecordKind,
        record: ApprovalRecord,
        *,
        result: str,
        arguments: dict[str, Any] | None = None,
        after: Any = None,
    ) -> None:
        self.audit.append(
            AuditEvent(
                kind=kind,
                operator=self.operator,
                environment=record.environment,
                run_id=record.run_id,
                runbook=record.runbook,
                target=record.target,
                arguments=arguments if arguments is not None else record.params,
                after=after,
                result=result,
            )
        )

    def _refuse_read_only(self, what: str) -> None:
        if self.settings.read_only:
            raise ReadOnlyError(f"read-only mode: {what} was refused")


def _offer(record: ApprovalRecord) -> dict[str, Any]:
    return {
        "why": record.why,
        "expires_at": record.expires_at.isoformat(),
        "approvers": record.approvers,
        "steps": [step.get("summary", "") for step in record.plan.get("steps", [])],
    }


def _named(approvers: list[str], operator: str, groups: dict[str, list[str]]) -> bool:
    return any(
        name == operator or (name.startswith("group:") and operator in groups.get(name[6:], []))
        for name in approvers
    )


def _already(record: ApprovalRecord) -> ApprovalError:
    if record.status == "expired":
        return ApprovalExpired(
            f"the approval request of run {record.run_id} expired at "
            f"{record.expires_at:%H:%M:%S}Z; nothing was changed, plan the run again"
        )
    when = f" at {record.decided_at:%H:%M:%S}Z" if record.decided_at else ""
    return ApprovalError(
        f"run {record.run_id} is already {record.status} by {record.decided_by or '?'}{when}; "
        "nothing was changed"
    )


def _not_usable(record: ApprovalRecord) -> ApprovalError:
    if record.status == "pending":
        left = format_duration(timedelta(seconds=int(record.left_s())))
        return ApprovalPending(
            f"run {record.run_id} still waits for approval ({record.why}; expires in {left})"
        )
    if record.status == "denied":
        return ApprovalDenied(
            f"run {record.run_id} was denied by {record.decided_by}: {record.reason}; "
            "nothing was changed"
        )
    if record.status == "used":
        return ApprovalError(
            f"the approval of run {record.run_id} was used by {record.used_by} at "
            f"{record.used_at:%H:%M:%S}Z; an approval runs once"
        )
    return _already(record)


def not_usable(record: ApprovalRecord) -> ApprovalError:
    """Why ``record`` cannot be applied now (pending, denied, expired, used)."""
    return _not_usable(record)
