"""The runbook dialog's side of two-person approval (``console/runbooks/approvals.py``): what it
says when a plan needs approval, while it waits for another operator, and when the request is
decided, expires or is left pending. Text only: the dialog's worker does the waiting, through
``RunbookEngine.request_approval`` and ``wait_for_approval``, as `runbook run` does."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text

from console.tui.text import printable

if TYPE_CHECKING:
    from console.adapters.approval_store import ApprovalRecord
    from console.runbooks.approvals import ApprovalRequirement


def left(record: ApprovalRecord, now: datetime) -> str:
    from console.views.pending import clock  # the Pending view's way of saying it

    return clock(record.left_s(now))


def required_line(need: ApprovalRequirement) -> Text:
    return Text(f"approval required: {printable(need.why, 300)}", style="bold yellow")


def apply_hint(need: ApprovalRequirement | None) -> Text:
    if need is None:
        return Text(
            "press y to apply (a confirmation follows), esc to leave without changing anything",
            style="bold yellow",
        )
    return Text(
        "press y to request approval (a confirmation follows; the run then waits for another "
        "operator and applies once approved), esc to leave without changing anything",
        style="bold yellow",
    )


def requested_line(record: ApprovalRecord) -> Text:
    who = f" (approvers: {', '.join(record.approvers)})" if record.approvers else ""
    return Text(
        f"approval requested: run {record.run_id}{printable(who, 300)}; another operator "
        f"approves it in their Pending view or with `aml-console approve {record.run_id}`",
        style="yellow",
    )


def waiting_line(record: ApprovalRecord, now: datetime) -> Text:
    text = Text("waiting for approval by another operator ", style="bold yellow")
    text.append(f"(expires {record.expires_at:%H:%M:%S}Z; run {record.run_id})", style="yellow")
    text.append(f"  {left(record, now)} left", style="bold")
    text.append("  esc leaves it pending", style="dim")
    return text


def approved_line(record: ApprovalRecord) -> Text:
    return Text(
        f"approved by {printable(record.decided_by or '?', 128)}: applying", style="bold green"
    )


def outcome_line(record: ApprovalRecord) -> Text:
    """A request that ended without an approval this run can use: denied, expired, used."""
    if record.status == "denied":
        reason = f": {printable(record.reason, 300)}" if record.reason else ""
        who = printable(record.decided_by or "?", 128)
        return Text(
            f"run {record.run_id}: denied by {who}{reason}; nothing was changed", style="bold red"
        )
    if record.status == "expired":
        return Text(
            f"run {record.run_id}: expired at {record.expires_at:%H:%M:%S}Z without a decision; "
            "nothing was changed (plan again to ask again)",
            style="bold red",
        )
    by = printable(record.used_by or record.decided_by or "?", 128)
    return Text(f"run {record.run_id}: {record.status} by {by}; not applied here", style="bold red")


def left_pending(record: ApprovalRecord) -> str:
    """What closing the dialog while it waits leaves behind (a toast: plain text)."""
    return (
        f"run {record.run_id} stays pending until {record.expires_at:%H:%M:%S}Z; once "
        f"approved, `aml-console runbook resume {record.run_id}` runs it"
    )
