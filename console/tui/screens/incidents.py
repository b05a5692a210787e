"""Incidents: the context's open and closed incidents, newest first (the open ones marked),
with how often the same attack came back; the selected one's timeline (time, kind, detail,
operator) and its time to detect, to mitigate and to contain. `n` adds a note, `x` closes it
(after a confirmation), `e` exports its postmortem draft as markdown.

Every read and write runs in a worker (files in a thread); a refusal (read-only mode, a closed
incident, a backend down) is a one-line toast. Client ids, titles and notes are shown through
``console/tui/text.py``: an id holding markup or escape sequences is shown as text."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.widgets import Button, DataTable, Static

from console.errors import ConsoleError
from console.tui.messages import RememberSelection
from console.tui.screens.base import ViewScreen
from console.tui.screens.dialogs import ConfirmActionModal, PromptScreen
from console.tui.text import plain, printable
from console.tui.widgets.keyed_table import sync_rows
from console.views.incidents import (
    IncidentDetail,
    IncidentsSnapshot,
    add_note,
    close_incident,
    export_markdown,
    fetch_incidents,
    open_from_alert,
)

if TYPE_CHECKING:
    from datetime import datetime

    from textual.screen import Screen

    from console.config import Settings
    from console.incidents.model import Incident

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": ""}
EVENT_STYLE = {
    "opened": "bold",
    "alert-firing": "bold red",
    "mitigation": "bold green",
    "promotion": "bold cyan",
    "contained": "bold green",
    "closed": "bold",
    "note": "cyan",
    "error": "red",
}
CRITICAL = ("critical", "page")
NONE_YET = "no incidents: i on an alert (1 Alerts) opens one, or `aml-console incident open`"


def _stamp(at: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    return "–" if at is None else f"{at:{fmt}}"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def detail_head(detail: IncidentDetail) -> Text:
    """The incident's title, who opened (and closed) it, and its three times."""
    inc, times = detail.incident, detail.times
    text = Text(printable(inc.title, 200), style="bold")
    text.append(f"\n{inc.id} · {inc.status} · {inc.severity} {inc.attack_kind} · ")
    text.append(f"opened {_stamp(inc.opened_at)} by {printable(inc.opened_by, 60)}")
    if inc.closed_at is not None:
        text.append(f" · closed {_stamp(inc.closed_at)} by {printable(inc.closed_by, 60)}")
    text.append("\nTTD ", style="bold")
    text.append(_seconds(times.time_to_detect_s))
    text.append("  TTM ", style="bold")
    text.append(_seconds(times.time_to_mitigate_s))
    text.append("  TTC ", style="bold")
    text.append(_seconds(times.time_to_contain_s))
    text.append("  (from the first request)", style="dim")
    if detail.missing:
        text.append(f"\n✖ {len(detail.missing)} source(s) could not be read", style="red")
    return text


class CloseModal(ConfirmActionModal):
    """The confirmation before closing: ConfirmActionModal (focus on Cancel, y / n / esc)
    with its verb on the button."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm-dialog"):
            yield Static(self.question, id="confirm-question")
            yield Static(self.detail, id="confirm-detail")
            with Horizontal(id="confirm-buttons"):
                yield Button("Close it (y)", id="confirm-yes", variant="error")
                yield Button("Cancel (n / esc)", id="confirm-no", variant="primary")


class IncidentsScreen(ViewScreen[IncidentsSnapshot]):
    VIEW = "incidents"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *ViewScreen.BINDINGS,
        Binding("n", "note", "Note"),
        Binding("x", "close_incident", "Close"),
        Binding("e", "export", "Export md"),
    ]
    DEFAULT_CSS = """
    #incidents-summary { height: auto; max-height: 4; padding: 0 1; }
    #incidents-table { height: auto; max-height: 45%; }
    #incident-detail { height: 1fr; border-top: solid $primary; }
    #incident-head { height: auto; padding: 0 1; }
    #incident-timeline { height: 1fr; }
    """

    wanted: str | None = None
    """An incident to put the cursor on once it is listed (``show_incident``)."""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="incidents-summary")
        table: DataTable[Text] = DataTable(id="incidents-table", cursor_type="row")
        table.add_columns(
            "id", "status", "severity", "kind", "model", "client", "opened", "by", "recurrence"
        )
        yield table
        with Vertical(id="incident-detail"):
            yield Static("", id="incident-head")
            timeline: DataTable[Text] = DataTable(id="incident-timeline", cursor_type="row")
            timeline.add_columns("time (UTC)", "kind", "detail", "operator")
            yield timeline

    async def fetch(self) -> IncidentsSnapshot:
        selected = self.wanted or self.cursor_key("#incidents-table")
        return await fetch_incidents(self.context.backends, selected, self.context.now())

    def has_no_data(self, snapshot: IncidentsSnapshot) -> bool:
        return not snapshot.rows

    def warnings(self, snapshot: IncidentsSnapshot) -> list[str]:
        n = len(snapshot.problems)
        return [f"{n} unreadable incident file(s) skipped"] if n else []

    def show_snapshot(self, snapshot: IncidentsSnapshot) -> None:
        table = self.query_one("#incidents-table", DataTable)
        rows: list[tuple[str, list[Text]]] = []
        for row in snapshot.rows:
            inc = row.incident
            if not self.keep(
                inc.id, inc.status, inc.severity, inc.attack_kind, inc.model, inc.client,
                inc.opened_by, inc.title, row.recurrence,
            ):  # fmt: skip
                continue
            status = (
                Text("● open", style="bold red") if inc.is_open else Text("closed", style="dim")
            )
            rows.append(
                (
                    inc.id,
                    [
                        plain(inc.id, "bold" if inc.is_open else ""),
                        status,
                        plain(inc.severity, SEVERITY_STYLE.get(inc.severity, "")),
                        plain(inc.attack_kind),
                        plain(inc.model or "", limit=40),
                        plain(inc.client or "", limit=50),
                        Text(_stamp(inc.opened_at)),
                        plain(inc.opened_by, limit=30),
                        plain(row.recurrence, "dim", limit=70),
                    ],
                )
            )
        sync_rows(table, rows)  # the cursor stays on its incident
        if self.wanted is not None and snapshot.find(self.wanted) is not None:
            keys = [key for key, _ in rows]
            if self.wanted in keys:
                table.move_cursor(row=keys.index(self.wanted))
            self.wanted = None
        self._show_summary(snapshot)
        self._show_detail()

    def _show_summary(self, snapshot: IncidentsSnapshot) -> None:
        total, opened = len(snapshot.rows), snapshot.open_count
        text = Text(f"{total} incident{'' if total == 1 else 's'} · ", style="bold")
        text.append(f"{opened} open", style="bold red" if opened else "bold")
        if self.filter_text:
            shown = self.query_one("#incidents-table", DataTable).row_count
            text.append(f"  · /{self.filter_text}: {shown} match")
        for line in snapshot.recurring:
            text.append(f"\nrecurring: {printable(line.text, 120)}", style="dim")
        if snapshot.problems:
            text.append(f"\n✖ {printable(snapshot.problems[0], 160)}", style="red")
        self.query_one("#incidents-summary", Static).update(text)

    def selected(self) -> Incident | None:
        key = self.cursor_key("#incidents-table")
        if key is None or self.snapshot is None:
            return None
        row = self.snapshot.find(key)
        return row.incident if row else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "incidents-table":
            return
        if incident := self.selected():
            self.post_message(RememberSelection(client=incident.client, model=incident.model))
        if not self._show_detail():
            self.action_refresh_now()  # the newly selected incident's timeline

    def _show_detail(self) -> bool:
        """Draw the selected incident's timeline; False when the snapshot holds another's."""
        head = self.query_one("#incident-head", Static)
        timeline = self.query_one("#incident-timeline", DataTable)
        incident = self.selected()
        detail = self.snapshot.detail if self.snapshot else None
        if incident is None:
            timeline.clear()
            if self.snapshot is not None and self.snapshot.rows:
                head.update(Text(f"no incident matches /{self.filter_text}", style="dim"))
            else:
                head.update(Text(NONE_YET, style="dim"))
            return True
        if detail is None or detail.incident.id != incident.id:
            timeline.clear()
            head.update(Text(f"{incident.id}: reading its timeline…", style="dim"))
            return False
        head.update(detail_head(detail))
        rows = [
            (
                f"{i}",
                [
                    Text(_stamp(e.at, "%m-%d %H:%M:%S")),
                    plain(e.kind, EVENT_STYLE.get(e.kind, ""), limit=24),
                    plain(e.detail, limit=200),
                    plain(e.operator or "", limit=40),
                ],
            )
            for i, e in enumerate(detail.events)
        ]
        sync_rows(timeline, rows)
        return True

    def show_incident(self, incident_id: str) -> None:
        """Put the cursor on ``incident_id`` (now, or once a refresh lists it)."""
        self.wanted = incident_id
        if self.is_mounted:
            self.action_refresh_now()

    # Writing -------------------------------------------------------------------------------
    def _writable(self, what: str) -> Incident | None:
        """The selected incident, or None after saying in one line why nothing is asked."""
        incident = self.selected()
        if incident is None:
            self.notify("select an incident first", severity="warning")
            return None
        if self.context.settings.read_only:
            self.notify(
                f"read-only mode: {what} on {incident.id} was refused; nothing was written",
                severity="error",
                markup=False,
            )
            return None
        return incident

    def action_note(self) -> None:
        incident = self._writable("a note")
        if incident is None:
            return
        prompt = PromptScreen(f"note on {incident.id} (enter adds it, esc cancels)")

        def given(text: str | None) -> None:
            if text is not None and text.strip():
                self._note(incident.id, text)
            elif text is not None:
                self.notify("an empty note was not added", severity="warning")

        self.app.push_screen(prompt, given)

    @work(group="incident-write", exit_on_error=False)
    async def _note(self, incident_id: str, text: str) -> None:
        settings = self.context.settings
        try:
            await asyncio.to_thread(add_note, settings, text, incident_id)
        except ConsoleError as exc:
            self.notify(printable(exc, 300), severity="error", markup=False)
            return
        self.notify(f"noted on {incident_id}", markup=False)
        self.action_refresh_now()

    def action_close_incident(self) -> None:
        incident = self._writable("closing")
        if incident is None:
            return
        if not incident.is_open:
            self.notify(f"{incident.id} is already closed", severity="warning", markup=False)
            return
        prompt = PromptScreen(f"why close {incident.id}? (optional; enter, then confirm)")

        def reason_given(reason: str | None) -> None:
            if reason is None:
                return
            question = Text("Close incident ", style="bold")
            question.append(incident.id, style="bold cyan")
            question.append("?", style="bold")
            detail = Text(printable(incident.title, 200))
            detail.append(f"\nclosed by {printable(self.context.settings.operator, 60)}")
            if reason.strip():
                detail.append(f" · reason: {printable(reason, 300)}")

            def answered(yes: bool | None) -> None:
                if yes:
                    self._close(incident.id, reason)

            self.app.push_screen(CloseModal(question, detail), answered)

        self.app.push_screen(prompt, reason_given)

    @work(group="incident-write", exit_on_error=False)
    async def _close(self, incident_id: str, reason: str) -> None:
        try:
            await asyncio.to_thread(close_incident, self.context.settings, incident_id, reason)
        except ConsoleError as exc:
            self.notify(printable(exc, 300), severity="error", markup=False)
            return
        self.notify(f"closed {incident_id}", markup=False)
        self.action_refresh_now()

    def action_export(self) -> None:
        incident = self.selected()
        if incident is None:
            self.notify("select an incident first", severity="warning")
            return
        self.notify(f"exporting {incident.id}…", timeout=3, markup=False)
        self._export(incident.id)

    @work(group="incident-export", exclusive=True, exit_on_error=False)
    async def _export(self, incident_id: str) -> None:
        settings = self.context.settings
        try:
            exported = await asyncio.to_thread(export_markdown, settings, incident_id)
        except ConsoleError as exc:
            self.notify(printable(exc, 300), severity="error", markup=False)
            return
        missing = f" ({len(exported.missing)} source(s) missing)" if exported.missing else ""
        self.notify(f"postmortem written: {exported.path}{missing}", timeout=15, markup=False)


# Called from the app (`:note TEXT`) and from Alerts (`i`, `b`/`c` on a critical alert) ----
async def note_current(settings: Settings, text: str) -> tuple[str, SeverityLevel]:
    """`:note TEXT`: a note on the current open incident; the one-line answer to show."""
    try:
        incident = await asyncio.to_thread(add_note, settings, text)
    except ConsoleError as exc:
        return printable(exc, 300), "error"
    return f"noted on {incident.id} ({printable(incident.title, 80)})", "information"


async def incident_from_alert(
    screen: Screen[Any], settings: Settings, labels: dict[str, str], acting: bool
) -> None:
    """`i` on an alert (``acting`` False): open an incident from it, or say that one is open
    on its model/client and show it in the Incidents view. A responder acting on a critical
    alert (``acting``): open one if none is open on its client, quietly otherwise (and never
    in read-only mode, where acting only plans)."""
    if acting and (settings.read_only or labels.get("severity", "").lower() not in CRITICAL):
        return
    try:
        incident, opened = await asyncio.to_thread(open_from_alert, settings, labels)
    except ConsoleError as exc:
        screen.notify(printable(exc, 300), severity="error", markup=False)
        return
    on = printable(incident.client or incident.model, 60)
    if opened:
        why = "for this critical alert " if acting else ""
        screen.notify(f"opened incident {incident.id} {why}on {on} (0 Incidents)", markup=False)
    elif not acting:
        screen.notify(f"incident {incident.id} is already open on {on}: showing it", markup=False)
        view = screen.app.get_screen(IncidentsScreen.VIEW)
        if isinstance(view, IncidentsScreen):
            view.show_incident(incident.id)
        await screen.app.run_action(f"view({IncidentsScreen.VIEW!r})")
