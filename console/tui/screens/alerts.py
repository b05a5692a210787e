"""Alerts: firing alerts grouped by name and severity, their age, labels and silences; the
selected alert's details with its client's correlated spans and sampled inputs. Runbooks one key
away, filled from the alert's labels.

At fleet scale (a flood of throwaway ids can make each fire its own alert) it lists as Clients
does: the most severe first, a page of ``ALERTS_PAGE`` rows and a "more" row for the next, sort
keys (shift+letter, again reverses), ``/`` over every alert, and a count of alerts, firing,
silenced and clients named beside how many are shown."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from console.tui.context import ScreenContext
from console.tui.messages import OpenReplay, OpenRunbook, RememberSelection, ShowSamples
from console.tui.screens.base import ViewScreen
from console.tui.text import age, plain, printable
from console.tui.widgets.keyed_table import sync_rows
from console.views.alerts import AlertRow, AlertsSnapshot, fetch_alerts
from console.views.correlation import Correlated, fetch_correlated

SEVERITY_STYLE = {"critical": "bold red", "page": "bold red", "warning": "yellow"}
ALERTS_PAGE = 100
"""Rows listed per page; the "more" row shows the next page."""
MORE_KEY = "\x00more"
"""The row key of the "more" row (no fingerprint holds a NUL)."""
_EPOCH = datetime.min.replace(tzinfo=UTC)
SORTS: dict[str, tuple[str, Callable[[AlertRow], Any]]] = {
    "severity": ("severity", lambda a: 0),  # the view's own order: most severe group first
    "name": ("alert", lambda a: a.alertname),
    "client": ("client", lambda a: a.client or ""),
    "model": ("model", lambda a: a.model or ""),
    "state": ("state", lambda a: a.shown_state),
    "age": ("age", lambda a: a.starts_at or _EPOCH),  # oldest first
}
"""Sort name -> (column, key)."""


class AlertsScreen(ViewScreen[AlertsSnapshot]):
    VIEW = "alerts"
    DEFAULT_SORT = "severity"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        # i opens an incident here (Alerts has no PromQL to inspect: Alertmanager's API)
        *(b for b in ViewScreen.BINDINGS if not (isinstance(b, Binding) and b.key == "i")),
        Binding("b", "block", "Block client"),
        Binding("c", "contain", "Contain extraction"),
        Binding("s", "silence", "Silence"),
        Binding("enter", "samples", "Samples"),
        Binding("v", "replay", "Replay"),
        Binding("i", "incident", "Open incident"),
        Binding("S", "sort('severity')", "Sort: severity", show=False),
        Binding("N", "sort('name')", "Sort: alert", show=False),
        Binding("C", "sort('client')", "Sort: client", show=False),
        Binding("M", "sort('model')", "Sort: model", show=False),
        Binding("T", "sort('state')", "Sort: state", show=False),
        Binding("A", "sort('age')", "Sort: age", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="alerts-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("severity", "alert", "client", "model", "state", "age", "summary")
        yield table
        yield Static("", id="alerts-count")
        with Horizontal(id="alert-panes"):
            yield Static("", id="alert-detail")
            yield Static("", id="alert-correlated")

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(context)
        self.correlated_for: str | None = None
        """Fingerprint of the alert whose correlated data is shown (loaded on selection)."""
        self.correlated: Correlated | None = None
        self.pages = 1
        """Pages of ``ALERTS_PAGE`` rows shown (the "more" row adds one)."""

    async def fetch(self) -> AlertsSnapshot:
        return await fetch_alerts(self.context.backends)

    def action_refresh_now(self) -> None:
        self.correlated_for = None  # `r` reloads the correlated spans and samples too
        super().action_refresh_now()

    def has_no_data(self, snapshot: AlertsSnapshot) -> bool:
        return not snapshot.alerts

    def show_snapshot(self, snapshot: AlertsSnapshot) -> None:
        table = self.query_one("#alerts-table", DataTable)
        now = self.context.now()
        kept = [
            alert
            for alert in snapshot.alerts
            if self.keep(
                alert.alertname, alert.client, alert.model, alert.severity, *alert.labels.values()
            )
        ]
        if self.sort_by != "severity" or self.sort_reversed:
            kept.sort(key=SORTS[self.sort_by][1], reverse=self.sort_reversed)  # stable
        shown = kept[: self.pages * ALERTS_PAGE]
        rows: list[tuple[str, list[Text]]] = []
        seen: set[str] = set()
        for alert in shown:
            started = age((now - alert.starts_at).total_seconds()) if alert.starts_at else "?"
            cells = [
                plain(alert.severity, SEVERITY_STYLE.get(alert.severity, "")),
                plain(alert.alertname, "bold"),
                plain(alert.client or ""),
                plain(alert.model or ""),
                plain(alert.shown_state, "dim" if alert.silenced_by else ""),
                Text(started),
                plain(alert.annotations.get("summary", ""), limit=120),
            ]
            key = alert.fingerprint
            if not key or key in seen:  # an answer without fingerprints: rows stay distinct
                key = f"{key}#{len(rows)}"
            seen.add(key)
            rows.append((key, cells))
        if len(kept) > len(shown):
            label = f"… more: the next {min(ALERTS_PAGE, len(kept) - len(shown))} (enter)"
            rows.append((MORE_KEY, [Text(""), Text(label, style="dim italic")] + [Text("")] * 5))
        sync_rows(table, rows)  # the cursor stays on the selected alert's fingerprint
        self._show_count(snapshot, len(kept), len(shown))
        self._show_detail()

    def _show_count(self, snapshot: AlertsSnapshot, kept: int, shown: int) -> None:
        alerts = snapshot.alerts
        silenced = sum(1 for a in alerts if a.silenced_by)
        clients = len({a.client for a in alerts if a.client})
        text = Text(f"{shown} listed · {len(alerts)} alerts", style="bold")
        text.append(f" ({len(alerts) - silenced} firing, {silenced} silenced)")
        text.append(f" · {clients} client{'' if clients == 1 else 's'} named")
        column = SORTS[self.sort_by][0]
        text.append(f"  · sorted by {column}{' (reversed)' if self.sort_reversed else ''}")
        if self.filter_text:
            text.append(f"  · /{self.filter_text}: {kept} match")
        self.query_one("#alerts-count", Static).update(text)

    def selected(self) -> AlertRow | None:
        key = self.cursor_key("#alerts-table")
        if key is None or self.snapshot is None:
            return None
        return next((a for a in self.snapshot.alerts if a.fingerprint == key), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if alert := self.selected():
            self.post_message(
                RememberSelection(client=alert.client, model=alert.model, alertname=alert.alertname)
            )
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value == MORE_KEY:
            self.pages += 1
            self.show_again()
            return
        self.action_samples()  # enter on a row

    def _show_detail(self) -> None:
        alert = self.selected()
        detail = self.query_one("#alert-detail", Static)
        if alert is None:
            detail.update(Text("no alert selected", style="dim"))
            return
        text = Text()
        text.append("labels  ", style="bold")
        text.append(printable(", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))))
        for key in ("description", "runbook"):
            if key in alert.annotations:
                text.append(f"\n{key}  ", style="bold")
                text.append(printable(alert.annotations[key]))
        if alert.silenced_by:
            text.append("\nsilenced by  ", style="bold")
            text.append(printable(", ".join(alert.silenced_by)))
        detail.update(text)
        if alert.fingerprint != self.correlated_for:
            self.correlated_for = alert.fingerprint
            self._load_correlated(alert)

    @work(exclusive=True, group="alert-correlated", exit_on_error=False)
    async def _load_correlated(self, alert: AlertRow) -> None:
        box = self.query_one("#alert-correlated", Static)
        if not alert.client:
            box.update(Text("no client label: nothing to correlate", style="dim"))
            return
        box.update(Text("reading spans and samples…", style="dim"))
        correlated = await fetch_correlated(
            self.context.backends, alert.client, alert.model, alert.starts_at
        )
        self.correlated = correlated
        box.update(render_correlated(alert.client, correlated))

    def _run(self, runbook: str, **params: str) -> None:
        self.post_message(OpenRunbook(runbook, params))

    def action_block(self) -> None:
        alert = self.selected()
        if alert is None or not alert.client:
            self.notify("select an alert with a client label", severity="warning")
            return
        self._incident(alert.labels, acting=True)  # a critical alert's responder opens one
        self._run("block-client", client=alert.client, reason=f"{alert.alertname} firing")

    def action_contain(self) -> None:
        alert = self.selected()
        if alert is None or not alert.client:
            self.notify("select an alert with a client label", severity="warning")
            return
        params = {"client": alert.client}
        if alert.model:
            params["model"] = alert.model
        self._incident(alert.labels, acting=True)
        self._run("contain-extraction", **params)

    def action_incident(self) -> None:
        """Open an incident from the selected alert (or show the one open on its client)."""
        alert = self.selected()
        if alert is None:
            self.notify("select an alert", severity="warning")
            return
        self._incident(alert.labels, acting=False)

    @work(group="alert-incident", exit_on_error=False)
    async def _incident(self, labels: dict[str, str], acting: bool) -> None:
        from console.tui.screens.incidents import incident_from_alert

        await incident_from_alert(self, self.context.settings, labels, acting)

    def action_samples(self) -> None:
        """The selected alert's client's sampled inputs and their traces."""
        alert = self.selected()
        if alert is None or not alert.client:
            self.notify("select an alert with a client label", severity="warning")
            return
        self.post_message(ShowSamples(alert.client, alert.model))

    def action_replay(self) -> None:
        """The alert's samples through champion and previous (its labels pick them)."""
        alert = self.selected()
        if alert is None:
            self.notify("select an alert", severity="warning")
            return
        self.post_message(OpenReplay(alert.client, alert.model, alert.fingerprint))

    def action_silence(self) -> None:
        alert = self.selected()
        if alert is None:
            self.notify("select an alert", severity="warning")
            return
        self._run("silence-alert", alertname=alert.alertname)


def render_correlated(client: str, correlated: Correlated) -> Text:
    text = Text(f"traces of {printable(client, 60)}", style="bold")
    if correlated.span_error:
        text.append("  ✖ " + printable(correlated.span_error, 120), style="red")
    elif not correlated.spans:
        text.append("  none since the alert began", style="dim")
    for span in correlated.spans:
        attrs = span.attributes
        text.append(
            f"\n {span.start:%H:%M:%S} {printable(attrs.get('aml.outcome', '?'), 10):<9}"
            f" score {_fmt(attrs.get('aml.detector_score'))}"
            f" extr {_fmt(attrs.get('aml.extraction_score'))}  "
        )
        text.append(span.trace_id[:16], style="cyan")
    text.append("\nsampled inputs", style="bold")
    if correlated.sample_error:
        text.append("  ✖ " + printable(correlated.sample_error, 120), style="red")
    elif not correlated.samples:
        text.append("  none since the alert began", style="dim")
    else:
        flagged = sum(1 for s in correlated.samples if s.flagged)
        text.append(
            f"  {len(correlated.samples)} newest, {flagged} flagged (enter: all)", style="dim"
        )
    for sample in correlated.samples[:4]:
        text.append(
            f"\n {sample.time:%H:%M:%S} label {sample.prediction}"
            f" score {sample.detector_score:.2f}{' FLAGGED' if sample.flagged else ''}"
            f"  {sample.trace_id[:16]}"
        )
    return text


def _fmt(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "–"
