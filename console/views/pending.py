"""Pending: the context's approval requests (``console/runbooks/approvals.py``) as another
operator reviews them: the pending ones first, oldest first (the one waiting longest on top),
then the recently decided ones, newest first. Read with ``Approvals.newest()`` on the app's
Redis client, so a request past its ttl is marked expired here, once, as on every console.

Decisions go through the same ``Approvals`` (``decide``): the two-person rule, the request's
approvers, the ACL's ``approve`` and read-only are checked there, not here."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from console.adapters.approval_store import ApprovalRecord
from console.adapters.backends import Backends

if TYPE_CHECKING:
    from console.runbooks.approvals import Approvals

DECIDED_SHOWN = 20
"""At most this many decided (approved, denied, expired, used) requests are listed."""
OPEN = ("pending",)


@dataclass(frozen=True)
class PlannedStep:
    """One step of the plan the requester saw (``RunPlan.to_dict``'s steps)."""

    id: str
    action: str
    summary: str
    noop: bool


@dataclass(frozen=True)
class PendingSnapshot:
    operator: str
    """Who decides on this console (``settings.operator``)."""
    pending: list[ApprovalRecord] = field(default_factory=list)
    """Waiting for a decision, oldest first."""
    decided: list[ApprovalRecord] = field(default_factory=list)
    """Approved, denied, expired or used, newest first (at most DECIDED_SHOWN)."""

    @property
    def records(self) -> list[ApprovalRecord]:
        return [*self.pending, *self.decided]

    def find(self, run_id: str) -> ApprovalRecord | None:
        return next((r for r in self.records if r.run_id == run_id), None)


_APPROVALS: weakref.WeakKeyDictionary[Backends, Approvals] = weakref.WeakKeyDictionary()


def approvals_of(backends: Backends) -> Approvals:
    """The context's requests on ``backends``' Redis client, decided as its operator: made
    once per set of backends (a context), not on every refresh (the audit key is a file)."""
    made = _APPROVALS.get(backends)
    if made is None:
        from console.audit.log import AuditLog
        from console.runbooks.approvals import Approvals

        settings = backends.settings
        made = Approvals(settings, AuditLog.from_settings(settings), backends.approvals)
        _APPROVALS[backends] = made
    return made


def split(records: list[ApprovalRecord], operator: str) -> PendingSnapshot:
    """``records`` (newest first, as the store lists them) as the view shows them."""
    pending = [r for r in records if r.status in OPEN]
    pending.sort(key=lambda r: (r.created_at, r.run_id))
    decided = [r for r in records if r.status not in OPEN][:DECIDED_SHOWN]
    return PendingSnapshot(operator, pending, decided)


async def fetch_pending(backends: Backends) -> PendingSnapshot:
    records = await approvals_of(backends).newest()
    return split(records, backends.settings.operator)


def planned_steps(record: ApprovalRecord) -> list[PlannedStep]:
    """The request's plan steps; a malformed entry shows as what it holds, never raises."""
    steps: list[PlannedStep] = []
    raw = record.plan.get("steps", [])
    for step in raw if isinstance(raw, list) else []:
        item: dict[str, Any] = step if isinstance(step, dict) else {"summary": step}
        steps.append(
            PlannedStep(
                str(item.get("id", "?")),
                str(item.get("action", "")),
                str(item.get("summary", "")),
                bool(item.get("noop", False)),
            )
        )
    return steps


def left_s(record: ApprovalRecord, now: datetime) -> float | None:
    """Seconds until a pending request expires (None once it is decided)."""
    return record.left_s(now) if record.status in OPEN else None


def clock(seconds: float) -> str:
    """``14m05s``, ``1h02m``: a ttl's time left."""
    whole = int(max(seconds, 0))
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 60}m{whole % 60:02d}s"
