"""Which runs need approval, who counts as the same person, and why a request cannot be used:
the rules of ``approvals.py``, without Redis or the audit log."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from console.adapters.approval_store import ApprovalRecord
from console.config import Settings
from console.durations import format_duration, parse_duration
from console.errors import ApprovalDenied, ApprovalError, ApprovalExpired, ApprovalPending
from console.runbooks.planning import RunPlan


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


def may_need_approval(runbook_approval: bool, settings: Settings) -> bool:
    """Without a plan (resuming an interrupted run): could this run have needed approval?"""
    return runbook_approval or settings.approvals.required != "never"


def person(name: str) -> str:
    """How two names are compared as people: ``Alice@Corp.Example`` is ``alice@corp.example``
    (identity providers pass on the case a user typed), fullwidth letters are plain ones."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def same_person(a: str, b: str) -> bool:
    return person(a) == person(b)


def named(approvers: list[str], operator: str, groups: dict[str, list[str]]) -> bool:
    """Whether ``operator`` is one of ``approvers`` (ids, or ``group:NAME`` of ``groups``)."""
    for name in approvers:
        if name.startswith("group:"):
            if any(same_person(member, operator) for member in groups.get(name[6:], [])):
                return True
        elif same_person(name, operator):
            return True
    return False


def already(record: ApprovalRecord) -> ApprovalError:
    """Why a request that is no longer pending cannot be decided."""
    if record.status == "expired":
        return ApprovalExpired(
            f"the approval request of run {record.run_id} expired at "
            f"{record.expires_at:%H:%M:%S}Z; nothing was changed, plan the run again"
        )
    if record.status == "used":
        return used_up(record)
    when = f" at {record.decided_at:%H:%M:%S}Z" if record.decided_at else ""
    return ApprovalError(
        f"run {record.run_id} is already {record.status} by {record.decided_by or '?'}{when}; "
        "nothing was changed"
    )


def used_up(record: ApprovalRecord) -> ApprovalError:
    when = f" at {record.used_at:%H:%M:%S}Z" if record.used_at else ""
    return ApprovalError(
        f"the approval of run {record.run_id} (by {record.decided_by}) was already used by "
        f"{record.used_by}{when}; an approval runs once, nothing was changed"
    )


def not_usable(record: ApprovalRecord) -> ApprovalError:
    """Why ``record`` cannot be applied now (pending, denied, expired, used)."""
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
    return already(record)
