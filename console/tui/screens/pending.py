"""Pending: runbook runs waiting for another operator's approval, and the recently decided
ones; the selected request's plan and approvers beside them. `a` approves, `d` denies (with a
reason, required), each after a confirmation; the decision is ``Approvals``' (two-person rule,
approvers, ACL, read-only, expiry), made in a worker, and a refusal is a one-line toast."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Static

from console.adapters.approval_store import ApprovalRecord
from console.errors import ConsoleError
from console.runbooks.approval_rules import same_person
from console.tui.screens.base import ViewScreen
from console.tui.screens.dialogs import ConfirmActionModal, PromptScreen
from console.tui.skin import environment_style
from console.tui.text import plain, printable
from console.tui.widgets.keyed_table import sync_rows
from console.views.pending import (
    PendingSnapshot,
    approvals_of,
    clock,
    fetch_pending,
    left_s,
    planned_steps,
)

STATUS_STYLE = {
    "pending": "bold yellow",
    "approved": "bold green",
    "used": "green",
    "denied": "bold red",
    "expired": "dim",
}


class DecisionModal(ConfirmActionModal):
    """The confirmation before approving or denying: ConfirmActionModal (focus on Cancel, y /
    n / esc) with the verb on its button."""

    def __init__(self, question: Text, detail: Text, verb: str) -> None:
        super().__init__(question, detail)
        self.verb = verb

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm-dialog"):
            yield Static(self.question, id="confirm-question")
            yield Static(self.detail, id="confirm-detail")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.verb.capitalize()} (y)", id="confirm-yes", variant="error")
                yield Button("Cancel (n / esc)", id="confirm-no", variant="primary")


def decision_modal(record: ApprovalRecord, verb: str, operator: str, reason: str = "") -> Text:
    """The question of the confirmation (the detail is ``request_detail``)."""
    question = Text(f"{verb.capitalize()} run ", style="bold")
    question.append(printable(record.run_id, 80), style="bold cyan")
    question.append(" (", style="bold")
    question.append(printable(record.runbook, 60), style="bold cyan")
    question.append(" on ", style="bold")
    question.append(printable(record.target, 120), style="bold cyan")
    question.append(f") as {printable(operator, 60)}?", style="bold")
    if reason:
        question.append(f"\nreason: {printable(reason, 300)}", style="")
    return question


def request_detail(record: ApprovalRecord, operator: str, left: float | None) -> Text:
    """What the request would do and who may decide it."""
    text = Text()
    text.append(f"run {printable(record.run_id, 80)}", style="bold")
    text.append(f"  {printable(record.runbook, 60)} on {printable(record.target, 200)}")
    text.append("  env ")
    text.append(printable(record.environment, 40), style=environment_style(record.environment))
    text.append(f"\nrequested by {printable(record.requester, 128)}")
    text.append(f" at {record.created_at:%H:%M:%S}Z · why: {printable(record.why, 300)}")
    approvers = ", ".join(record.approvers) if record.approvers else ""
    text.append("\napprovers: ")
    text.append(
        printable(approvers, 300) if approvers else "any other operator the ACL lets approve",
        style="" if approvers else "dim",
    )
    if record.params:
        shown = " ".join(f"{k}={v}" for k, v in record.params.items())
        text.append(f"\nparameters: {printable(shown, 400)}", style="dim")
    for i, step in enumerate(planned_steps(record), 1):
        mark = "=" if step.noop else "~"
        text.append(f"\n {mark} {i}. {printable(step.id, 60)} ({printable(step.action, 60)}): ")
        text.append(printable(step.summary, 200), style="dim" if step.noop else "")
    text.append("\n")
    if record.status == "pending":
        text.append(f"expires in {clock(left or 0)} ({record.expires_at:%H:%M:%S}Z)  ")
        if same_person(record.requester, operator):
            text.append(
                "your request: another operator must approve it; d withdraws it", style="yellow"
            )
        else:
            text.append("a approve  d deny (with a reason)", style="bold")
    else:
        text.append(record.status, style=STATUS_STYLE.get(record.status, ""))
        who = record.used_by if record.status == "used" else record.decided_by
        if who:
            text.append(f" by {printable(who, 128)}")
        if record.reason:
            text.append(f": {printable(record.reason, 300)}")
    return text


class PendingScreen(ViewScreen[PendingSnapshot]):
    VIEW = "pending"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *ViewScreen.BINDINGS,
        Binding("a", "approve", "Approve"),
        Binding("d", "deny", "Deny"),
    ]
    DEFAULT_CSS = """
    #pending-table { height: auto; max-height: 50%; }
    #pending-detail { height: 1fr; padding: 0 1; border-top: solid $primary; }
    """

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="pending-table", cursor_type="row")
        table.add_columns("run", "runbook", "target", "requester", "status", "expires in", "why")
        yield table
        yield Static("", id="pending-detail")

    async def fetch(self) -> PendingSnapshot:
        return await fetch_pending(self.context.backends)

    def has_no_data(self, snapshot: PendingSnapshot) -> bool:
        return not snapshot.records

    def show_snapshot(self, snapshot: PendingSnapshot) -> None:
        table = self.query_one("#pending-table", DataTable)
        now = self.context.now()
        rows: list[tuple[str, list[Text]]] = []
        for r in snapshot.records:
            if not self.keep(r.run_id, r.runbook, r.target, r.requester, r.status, r.why):
                continue
            left = left_s(r, now)
            status = Text(r.status, style=STATUS_STYLE.get(r.status, ""))
            who = r.used_by if r.status == "used" else r.decided_by
            if who:
                status.append(f" by {printable(who, 40)}", style="")
            rows.append(
                (
                    r.run_id,
                    [
                        plain(r.run_id, "bold"),
                        plain(r.runbook, limit=40),
                        plain(r.target, limit=50),
                        plain(r.requester, "cyan" if r.requester != snapshot.operator else "dim"),
                        status,
                        Text(clock(left), style="yellow") if left is not None else Text("–"),
                        plain(r.why, "dim", limit=80),
                    ],
                )
            )
        sync_rows(table, rows)
        self._show_detail()

    def selected(self) -> ApprovalRecord | None:
        key = self.cursor_key("#pending-table")
        if key is None or self.snapshot is None:
            return None
        return self.snapshot.find(key)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#pending-detail", Static)
        record = self.selected()
        if record is None:
            detail.update(Text("no approval requests in this context", style="dim"))
            return
        operator = self.context.settings.operator
        detail.update(request_detail(record, operator, left_s(record, self.context.now())))

    # Deciding -----------------------------------------------------------------------------
    def _decidable(self, verb: str) -> ApprovalRecord | None:
        """The selected pending request, or None after saying why not (nothing is asked)."""
        record = self.selected()
        settings = self.context.settings
        if record is None:
            self.notify("select a request first", severity="warning")
            return None
        if settings.read_only:
            self.notify(
                f"read-only mode: {verb} run {record.run_id} was refused",
                severity="error",
                markup=False,
            )
            return None
        if record.status != "pending":
            self.notify(
                f"run {record.run_id} is {record.status}: nothing to {verb}",
                severity="warning",
                markup=False,
            )
            return None
        if verb == "approve" and same_person(record.requester, settings.operator):
            # Asked before the confirmation only to spare a useless question: Approvals
            # refuses it anyway (the rule is enforced there).
            self.notify(
                f"{printable(settings.operator, 60)} requested run {record.run_id}: another "
                "operator must approve it (two-person rule); nothing was changed",
                severity="error",
                markup=False,
            )
            return None
        return record

    def action_approve(self) -> None:
        record = self._decidable("approve")
        if record is not None:
            self._confirm(record, "approve", "")

    def action_deny(self) -> None:
        record = self._decidable("deny")
        if record is None:
            return
        prompt = PromptScreen(f"reason for denying run {record.run_id} (required; esc cancels)")

        def reason_given(reason: str | None) -> None:
            if reason is None:
                return
            if not reason.strip():
                self.notify("a denial needs a reason; nothing was changed", severity="warning")
                return
            self._confirm(record, "deny", reason.strip())

        self.app.push_screen(prompt, reason_given)

    def _confirm(self, record: ApprovalRecord, verb: str, reason: str) -> None:
        operator = self.context.settings.operator
        left = left_s(record, self.context.now())
        modal = DecisionModal(
            decision_modal(record, verb, operator, reason),
            request_detail(record, operator, left),
            verb,
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide(record.run_id, reason if verb == "deny" else None)

        self.app.push_screen(modal, answered)

    @work(group="pending-decide", exit_on_error=False)
    async def _decide(self, run_id: str, reason: str | None) -> None:
        approvals = approvals_of(self.context.backends)
        try:
            if reason is None:
                record = await approvals.approve(run_id)
            else:
                record = await approvals.deny(run_id, reason)
        except ConsoleError as exc:
            self.notify(printable(exc, 400), severity="error", markup=False)
        else:
            self.notify(
                f"run {record.run_id} {record.status} ({printable(record.runbook, 60)} on "
                f"{printable(record.target, 80)})",
                markup=False,
            )
        self.action_refresh_now()
