"""Samples: what the gateway sampled (flagged inputs first of all), with provenance; the
selected input drawn as the 8x8 image it is, and the span of the request that carried it."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from console.adapters.samples import SampleRecord
from console.errors import ConsoleError
from console.tui.context import ScreenContext
from console.tui.digits import digit_rows
from console.tui.messages import OpenReplay, RememberSelection
from console.tui.screens.base import ViewScreen
from console.tui.text import number, plain, printable
from console.tui.widgets.keyed_table import sync_rows
from console.views.samples import SamplesSnapshot, fetch_samples, fetch_trace


class SamplesScreen(ViewScreen[SamplesSnapshot]):
    VIEW = "samples"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *ViewScreen.BINDINGS,
        Binding("v", "replay", "Replay"),
    ]

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(context)
        self.client: str | None = None
        self.model: str | None = None
        self.trace_for: str | None = None
        """Trace id of the span shown (or being read): read once per selection."""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="samples-scope")
        table: DataTable[Text] = DataTable(id="samples-table", cursor_type="row")
        table.add_columns(
            "time",
            "client",
            "model",
            "version",
            "score",
            "extraction",
            "label",
            "confidence",
            "flagged",
            "trace",
        )
        yield table
        with Horizontal(id="sample-detail"):
            yield Static("", id="sample-digit")
            yield Static("", id="sample-trace")

    def action_replay(self) -> None:
        """These samples (the view's client and model, or the selected sample's) replayed."""
        sample = self.selected()
        client = self.client or (sample.client if sample else None)
        model = self.model or (sample.model if sample else None)
        self.post_message(OpenReplay(client, model))

    def scope(self, client: str | None, model: str | None = None) -> None:
        """Show the samples of one client (and model); None: every sample."""
        self.client, self.model = client, model
        if self.is_mounted:
            self.action_refresh_now()

    async def fetch(self) -> SamplesSnapshot:
        return await fetch_samples(self.context.backends, self.client, self.model)

    def has_no_data(self, snapshot: SamplesSnapshot) -> bool:
        return not snapshot.records

    def warnings(self, snapshot: SamplesSnapshot) -> list[str]:
        if snapshot.skipped_lines:
            return [f"{snapshot.skipped_lines} unreadable lines skipped"]
        return []

    def show_snapshot(self, snapshot: SamplesSnapshot) -> None:
        scope = Text("samples", style="bold")
        if self.client:
            scope.append(f" of client {printable(self.client, 80)}")
        if self.model:
            scope.append(f" on {printable(self.model, 80)}")
        scope.append(
            f"  ({len(snapshot.records)}{'+' if snapshot.truncated else ''} newest)", style="dim"
        )
        self.query_one("#samples-scope", Static).update(scope)
        table = self.query_one("#samples-table", DataTable)
        rows: list[tuple[str, list[Text]]] = []
        for s in snapshot.records:
            if not self.keep(s.client, s.model, s.version, s.trace_id, s.sample_id):
                continue
            rows.append(
                (
                    s.sample_id,
                    [
                        Text(f"{s.time:%H:%M:%S}"),
                        plain(s.client, "bold"),
                        plain(s.model),
                        plain(s.version),
                        number(s.detector_score, style="bold red" if s.flagged else ""),
                        number(s.extraction_score),
                        Text(str(s.prediction)),
                        number(s.confidence),
                        Text("yes" if s.flagged else "", style="red"),
                        plain(s.trace_id[:16]),
                    ],
                )
            )
        sync_rows(table, rows)  # the cursor stays on its row's key
        self._show_selected()

    def selected(self) -> SampleRecord | None:
        key = self.cursor_key("#samples-table")
        if key is None or self.snapshot is None:
            return None
        return next((s for s in self.snapshot.records if s.sample_id == key), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if sample := self.selected():
            self.post_message(RememberSelection(client=sample.client, model=sample.model))
        self._show_selected()

    def _show_selected(self) -> None:
        sample = self.selected()
        digit = self.query_one("#sample-digit", Static)
        if sample is None:
            digit.update(Text("no sample selected", style="dim"))
            self.query_one("#sample-trace", Static).update("")
            return
        if sample.input is None:
            digit.update(Text("input not kept (hash-only mode)\nsha256 " + sample.input_sha256))
        else:
            digit.update(Text("\n".join(digit_rows(sample.input)), style="white on black"))
        if sample.trace_id != self.trace_for:
            self.trace_for = sample.trace_id
            self._load_trace(sample.trace_id)

    @work(exclusive=True, group="sample-trace", exit_on_error=False)
    async def _load_trace(self, trace_id: str) -> None:
        box = self.query_one("#sample-trace", Static)
        try:
            spans = await fetch_trace(self.context.backends, trace_id)
        except ConsoleError as exc:
            self.trace_for = None
            box.update(Text("trace: " + printable(exc, 200), style="red"))
            return
        if not spans:
            self.trace_for = None  # the writer may not have flushed it: look again next time
            box.update(Text(f"trace {trace_id}: no span found (yet)", style="dim"))
            return
        text = Text(f"trace {trace_id}\n", style="bold")
        for span in spans:
            text.append(
                f"{printable(span.name)}  {span.duration_ms:.1f} ms"
                f"{'  ERROR' if span.error else ''}\n"
            )
            for key, value in sorted(span.attributes.items()):
                text.append(f"  {printable(key, 60)} = {printable(value, 100)}\n", style="dim")
        box.update(text)
