"""Two-person approval of runbook runs, as Rundeck's approval step and StackStorm's inquiries.

A run that needs approval (its runbook's ``approval:``, or the context's ``[approvals]``; see
``approval_rules.py``) stops after its plan with a request in Redis
(``console.adapters.approval_store``) and waits. Another operator approves or denies it; nobody
approves their own run; the ACL's ``approve`` and the request's approvers say who else may. A
request is valid for its ttl, pending or approved; the first console to see it past its ttl
marks it expired. An approved request is used once, by the run that waits for it or by
``runbook resume RUN_ID``, and only for the plan that was approved: the same runbook file,
target, parameters (secrets included, by their HMAC), step arguments and step states.

Every request, decision, use and expiry is a record in the audit chain, naming the operator.
A decision is recorded before it is stored, so no run can use an approval the chain does not
hold; if storing it then loses a race, a ``superseded`` record follows. Requests and decisions
are sealed with the audit key (``approval_seal.py``): Redis write access alone cannot forge
them. Approval never skips a check: the approved run goes through the ACL and the stale-plan
check like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from console import acl
from console.adapters.approval_store import ApprovalRecord, ApprovalStatus, ApprovalStore
from console.audit.log import AuditLog
from console.audit.records import AuditEvent, RecordKind
from console.config import Settings
from console.errors import (
    AccessDenied,
    ApprovalError,
    ApprovalPending,
    AuditError,
    BackendUnavailable,
    ParameterError,
    ReadOnlyError,
    RunNotFound,
    StalePlanError,
)
from console.runbooks.approval_rules import (
    ApprovalRequirement,
    already,
    approval_required,
    named,
    not_usable,
    same_person,
    used_up,
)
from console.runbooks.approval_seal import (
    check_decision,
    check_request,
    seal_decision,
    seal_request,
    secrets_digest,
)
from console.runbooks.planning import RunPlan
from console.runbooks.resources import split_target

__all__ = ["ApprovalRequirement", "Approvals", "approval_required", "not_usable"]

REASON_LIMIT = 500
CAS_TRIES = 5
"""Compare-and-set attempts before giving up: each loss means another console changed the
request, so a few are plenty; more is a value that keeps changing (someone writing it)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _steps(plan_dict: dict[str, Any]) -> list[Any]:
    return [(step.get("id"), step.get("arguments")) for step in plan_dict.get("steps", [])]


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
        self._approvers_known(need.approvers)
        self.audit.check_writable()
        key = self.audit.require_key()
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
            secrets_mac=secrets_digest(key, runbook, plan.values),
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
        record = seal_request(key, record)
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
        store's change notices; read again every ``poll_s`` too, in case one is lost. Redis
        going away for a while is waited out (the request stays in Redis) until the expiry."""
        deadline: datetime | None = None
        while True:
            try:
                async with self.store.changes() as next_change:
                    while True:
                        record = await self.get(run_id)
                        deadline = record.expires_at
                        if record.status != "pending":
                            return record
                        if on_tick is not None:
                            on_tick(record)
                        poll = self.settings.approvals.poll_s
                        await next_change(min(poll, max(record.left_s(), 0.05)))
            except BackendUnavailable:
                if deadline is None or _now() >= deadline:
                    raise
                await asyncio.sleep(min(self.settings.approvals.poll_s, 2.0))

    async def claim_plan(self, plan: RunPlan, need: ApprovalRequirement) -> ApprovalRecord:
        """Take the approved request of ``plan`` as it is about to apply: used once, and only
        for exactly what was approved."""
        try:
            record = await self.get(plan.run_id)
        except RunNotFound:
            raise ApprovalPending(
                f"{need.why}: run {plan.run_id} has no approval request; nothing was changed"
            ) from None
        if record.status == "approved":
            key = self.audit.require_key()
            check_decision(key, record)
            self._same_plan(key, record, plan)
        return await self.claim(plan.run_id)

    def _same_plan(self, key: bytes, record: ApprovalRecord, plan: RunPlan) -> None:
        if record.runbook_sha256 != plan.loaded.sha256 or record.runbook_path != str(
            plan.loaded.path
        ):
            raise StalePlanError(
                f"the runbook {record.runbook} changed since run {record.run_id} was "
                "approved; nothing was changed, plan and request approval again"
            )
        approved_what = (record.target, record.params, _steps(record.plan), record.secrets_mac)
        planned_what = (
            plan.target,
            plan.public_params,
            _steps(plan.to_dict()),
            secrets_digest(key, plan.loaded.runbook, plan.values),
        )
        if approved_what != planned_what:
            raise StalePlanError(
                f"run {record.run_id} was approved for {record.target} with other parameters "
                "or arguments than this plan's; nothing was changed"
            )
        planned = {step.spec.id: step.fingerprint for step in plan.steps}
        if planned != record.fingerprints:
            raise StalePlanError(
                f"{record.target} changed since run {record.run_id} was approved; "
                "nothing was changed, plan and request approval again"
            )

    async def claim(self, run_id: str) -> ApprovalRecord:
        """Take an approved request for the run about to apply it: used once, recorded."""
        for _ in range(CAS_TRIES):
            record, raw = await self.store.read(run_id)
            record = await self._expire_if_due(record, raw) or record
            if record.status != "approved":
                raise not_usable(record)
            check_decision(self.audit.require_key(), record)
            if self._used_in_chain(run_id):
                raise used_up(record.model_copy(update={"used_by": "an earlier run"}))
            used = record.model_copy(
                update={"status": "used", "used_by": self.operator, "used_at": _now()}
            )
            if await self.store.replace(raw, used):
                self._record(
                    "approval-use",
                    used,
                    result="used",
                    arguments=_decision_args(used, None),
                )
                return used
        raise _contended(run_id)

    def _used_in_chain(self, run_id: str) -> bool:
        """An approval written back into Redis after its use: the chain says it ran."""
        return any(
            record.kind in ("approval-use", "run-intent") for record in self.audit.records(run_id)
        )

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

    async def verified(self, run_id: str) -> ApprovalRecord:
        """The request, refused unless it carries this context's seal: what an approver is
        shown must be what was asked."""
        record = await self.get(run_id)
        check_request(self.audit.require_key(), record)
        return record

    async def _decide(
        self, run_id: str, status: ApprovalStatus, reason: str | None
    ) -> ApprovalRecord:
        verb = "approve" if status == "approved" else "deny"
        self._refuse_read_only(f"{verb} run {run_id}")
        for _ in range(CAS_TRIES):
            record, raw = await self.store.read(run_id)
            record = await self._expire_if_due(record, raw) or record
            if record.status != "pending":
                raise already(record)
            key = self.audit.require_key()
            check_request(key, record)
            withdrawing = status == "denied" and same_person(record.requester, self.operator)
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
            kind: RecordKind = "approval-approve" if status == "approved" else "approval-deny"
            result = "withdrawn" if withdrawing else status
            # Recorded first: once stored, a waiting run may use it within a millisecond.
            self._record(kind, decided, result=result, arguments=_decision_args(decided, reason))
            if await self.store.replace(raw, decided):
                return decided
            self._record(
                kind,
                decided,
                result="superseded",
                arguments=_decision_args(decided, reason),
                error="the request changed before this decision was stored; it was not",
            )
        raise _contended(run_id)

    def _may_decide(self, record: ApprovalRecord, verb: str) -> None:
        """The two-person rule, the request's approvers, then the ACL's ``approve``."""
        me = self.operator
        if same_person(record.requester, me):
            raise AccessDenied(
                f"{me} requested run {record.run_id}: another operator must {verb} it "
                "(two-person rule); nothing was changed"
            )
        if record.approvers and not named(record.approvers, me, self._groups()):
            raise AccessDenied(
                f"{me} is not an approver of run {record.run_id} (approvers: "
                f"{', '.join(record.approvers)}); nothing was changed"
            )
        acl.check(
            self.settings.acl.path, me, "approve", record.runbook, record.tags, record.targets
        )

    def _groups(self) -> dict[str, list[str]]:
        path = self.settings.acl.path
        return acl.load_policy(path).groups if path else {}

    def _approvers_known(self, approvers: list[str]) -> None:
        groups = self._groups()
        unknown = [a[6:] for a in approvers if a.startswith("group:") and a[6:] not in groups]
        if unknown:
            where = "the ACL policy" if self.settings.acl.path else "no ACL policy ([acl] path)"
            raise ParameterError(
                f"approvers name group {', '.join(unknown)}, which {where} does not define: "
                "nobody could approve; nothing was requested"
            )

    # Everyone ------------------------------------------------------------------------------
    async def get(self, run_id: str) -> ApprovalRecord:
        record, raw = await self.store.read(run_id)
        return await self._expire_if_due(record, raw) or record

    async def newest(self) -> list[ApprovalRecord]:
        """Every request still kept, newest first; a pending one past its ttl is expired here.
        ``store.skipped`` counts the values that could not be read."""
        found = []
        for record in await self.store.newest():
            if record.status in ("pending", "approved") and record.expired():
                try:
                    record = await self.get(record.run_id)
                except (AuditError, RunNotFound):
                    record = record.model_copy(update={"status": "expired"})
            found.append(record)
        return found

    async def pending(self) -> list[ApprovalRecord]:
        return [record for record in await self.newest() if record.status == "pending"]

    async def _expire_if_due(self, record: ApprovalRecord, raw: str) -> ApprovalRecord | None:
        """Mark a pending or approved request past its ttl expired; the console that wins the
        compare-and-set writes the audit record (once, whoever notices first). A read-only
        console only says it is expired, and writes nothing."""
        if record.status not in ("pending", "approved") or not record.expired():
            return None
        expired = record.model_copy(update={"status": "expired"})
        if self.settings.read_only:
            return expired
        self.audit.check_writable()
        if await self.store.replace(raw, expired):
            try:
                self._record(
                    "approval-expire",
                    expired,
                    result="expired",
                    arguments={"requester": record.requester, "was": record.status},
                )
            except AuditError:
                await self.store.replace(expired.model_dump_json(), record)  # not without it
                raise
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
        error: str | None = None,
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
                error=error,
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
        "request_mac": record.request_mac,
    }


def _decision_args(record: ApprovalRecord, reason: str | None) -> dict[str, Any]:
    """What a decision record proves without Redis: what was decided, sealed how."""
    return {
        "reason": reason or "",
        "requester": record.requester,
        "params": record.params,
        "request_mac": record.request_mac,
    }


def _contended(run_id: str) -> ApprovalError:
    return ApprovalError(
        f"the approval request of run {run_id} kept changing while it was read "
        f"({CAS_TRIES} tries): nothing was changed, try again"
    )
