"""Alerts: firing alerts grouped by name and severity, their age, labels and silences; the
selected alert's details with its client's correlated spans and sampled inputs. Runbooks one key
away, filled from the alert's labels."""

from __future__ import annotations

from typing import ClassVar

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
from console.views.alerts import AlertRow, AlertsSnapshot, fetch_alerts
from console.views.correlation import Correlated, fetch_correlated

SEVERITY_STYLE = {"critical": "bold red", "page": "bold red", "warning": "yellow"}


class AlertsScreen(ViewScreen[AlertsSnapshot]):
    VIEW = "alerts"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *ViewScreen.BINDINGS,
        Binding("b", "block", "Block client"),
        Binding("c", "contain", "Contain extraction"),
        Binding("s", "silence", "Silence"),
        Binding("enter", "samples", "Samples"),
        Binding("v", "replay", "Replay"),
    ]

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="alerts-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("severity", "alert", "client", "model", "state", "age", "summary")
        yield table
        with Horizontal(id="alert-panes"):
            yield Static("", id="alert-detail")
            yield Static("", id="alert-correlated")

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(context)
        self.correlated_for: str | None = None
        """Fingerprint of the alert whose correlated data is shown (loaded on selection)."""
        self.correlated: Correlated | None = None

    async def fetch(self) -> AlertsSnapshot:
        return await fetch_alerts(self.context.backends)

    def action_refresh_now(self) -> None:
        self.correlated_for = None  # `r` reloads the correlated spans and samples too
        super().action_refresh_now()

    def has_no_data(self, snapshot: AlertsSnapshot) -> bool:
        return not snapshot.alerts

    def show_snapshot(self, snapshot: AlertsSnapshot) -> None:
        table = self.query_one("#alerts-table", DataTable)
        selected = self.selected()
        table.clear()
        now = self.context.now()
        for group in snapshot.groups:
            for alert in group.alerts:
                if not self.keep(
                    alert.alertname,
                    alert.client,
                    alert.model,
                    alert.severity,
                    *alert.labels.values(),
                ):
                    continue
                started = age((now - alert.starts_at).total_seconds()) if alert.starts_at else "?"
                table.add_row(
                    plain(alert.severity, SEVERITY_STYLE.get(alert.severity, "")),
                    plain(alert.alertname, "bold"),
                    plain(alert.client or ""),
                    plain(alert.model or ""),
                    plain(alert.shown_state, "dim" if alert.silenced_by else ""),
                    Text(started),
                    plain(alert.annotations.get("summary", ""), limit=120),
                    key=alert.fingerprint,
                )
        if selected is not None and selected.fingerprint in table.rows:
            table.move_cursor(row=table.get_row_index(selected.fingerprint))
        self._show_detail()

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
        self._run("block-client", client=alert.client, reason=f"{alert.alertname} firing")

    def action_contain(self) -> None:
        alert = self.selected()
        if alert is None or not alert.client:
            self.notify("select an alert with a client label", severity="warning")
            return
        params = {"client": alert.client}
        if alert.model:
            params["model"] = alert.model
        self._run("contain-extraction", **params)

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
