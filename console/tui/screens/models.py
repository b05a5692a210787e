"""Models: latency P50/P95/P99, error and flag rates, confidence shift (z-score and the mean
confidence over the last 30 minutes), the registry's versions and aliases with the robustness
recorded on each (clean accuracy, worst adversarial success, detector FPR, and whether that
passes the ``[robustness]`` gate, or why there is no usable record), and the selected
model's clients, suspicious first (the Clients view's selection for that model: the same rows,
order and reasons), read by a worker when the selection changes and on every refresh."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from console.errors import ConsoleError
from console.tui.context import ScreenContext
from console.tui.messages import OpenRunbook, RememberSelection
from console.tui.screens.base import ViewScreen
from console.tui.screens.robustness_cells import figures_cell, gate_reason_cell
from console.tui.text import number, plain, printable
from console.tui.widgets.client_cells import summary_cells
from console.tui.widgets.keyed_table import sync_rows
from console.tui.widgets.plots import sparkline
from console.tui.widgets.status import PanelState, render_badge
from console.views import queries as q
from console.views.model_clients import ModelClients, fetch_model_clients
from console.views.models import ModelsSnapshot, VersionRow, fetch_models

MS = "{:.1f} ms"


class ModelsScreen(ViewScreen[ModelsSnapshot]):
    VIEW = "models"
    QUERIES = (*q.MODEL_INSTANT, q.MODEL_CONFIDENCE)
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *ViewScreen.BINDINGS,
        Binding("R", "rollback", "Roll back"),
    ]

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(context)
        self.registry_panel = PanelState()
        """The registry's own state: it can be down while Prometheus answers."""
        self.last_versions: dict[str, list[VersionRow]] = {}
        self.clients_of: ModelClients | None = None
        """The selected model's clients as last read."""

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="models-table", cursor_type="row")
        table.add_columns(
            "model",
            "req/s",
            "P50",
            "P95",
            "P99",
            "errors",
            "flagged",
            "conf. z",
            "confidence, 30 min",
        )
        yield table
        yield PlotextPlot(id="confidence-plot")
        yield Static("", id="registry-title")
        versions: DataTable[Text] = DataTable(id="versions-table", cursor_type="row")
        versions.add_columns(
            "model", "version", "aliases", "gate", "robustness", "kind", "status", "onnx sha256"
        )
        yield versions
        yield Static("", id="model-clients-title")
        clients: DataTable[Text] = DataTable(id="model-clients-table", cursor_type="row")
        clients.add_columns(
            "client", "why", "req/s", "extraction", "flagged/s", "refused", "policy"
        )
        yield clients

    async def fetch(self) -> ModelsSnapshot:
        return await fetch_models(self.context.backends)

    def has_no_data(self, snapshot: ModelsSnapshot) -> bool:
        return all(r.requests is None for r in snapshot.rows)

    def warnings(self, snapshot: ModelsSnapshot) -> list[str]:
        return list(snapshot.warnings)  # the registry has a status line of its own

    def show_snapshot(self, snapshot: ModelsSnapshot) -> None:
        table = self.query_one("#models-table", DataTable)
        rows: list[tuple[str, list[Text]]] = []
        for row in snapshot.rows:
            if not self.keep(row.model):
                continue
            points = [v for _, v in snapshot.confidence.get(row.model, [])]
            z = row.confidence_z
            cells = [
                plain(row.model, "bold"),
                number(row.requests),
                number(None if row.p50_s is None else row.p50_s * 1e3, MS),
                number(None if row.p95_s is None else row.p95_s * 1e3, MS),
                number(None if row.p99_s is None else row.p99_s * 1e3, MS),
                number(row.error_ratio, "{:.1%}"),
                number(row.flag_rate, "{:.1%}"),
                number(z, "{:+.1f}", "bold red" if z is not None and abs(z) > 3 else ""),
                _trend(points[-40:]),
            ]
            rows.append((row.model, cells))
        sync_rows(table, rows)
        self._load_clients()  # the selected model's, read again with every refresh
        self._plot_confidence(snapshot)
        registry = self.registry_panel
        if snapshot.registry_error:
            registry.failed(snapshot.registry_error)  # the last good versions stay on screen
        else:
            registry.succeeded(not snapshot.versions, (), self.context.monotonic())
            self.last_versions = snapshot.versions
        versions = self.query_one("#versions-table", DataTable)
        version_rows: list[tuple[str, list[Text]]] = []
        for model, model_versions in self.last_versions.items():
            for v in model_versions:
                cells = [
                    plain(model),
                    plain(v.version, "bold" if "champion" in v.aliases else ""),
                    plain(", ".join(v.aliases), "green" if "champion" in v.aliases else ""),
                    gate_reason_cell(v.robustness),
                    figures_cell(v.robustness),
                    plain(v.kind),
                    plain(v.status),
                    plain(v.sha256[:16]),
                ]
                version_rows.append((f"{model}\x00{v.version}", cells))
        sync_rows(versions, version_rows)
        title = Text("registry (MLflow)  ", style="bold")
        title.append_text(render_badge(registry, self.context.monotonic()))
        self.query_one("#registry-title", Static).update(title)

    def _plot_confidence(self, snapshot: ModelsSnapshot) -> None:
        """Mean prediction confidence per model over the last 30 minutes: a shift (M7) is a
        step in a line, easier seen than read."""
        widget = self.query_one("#confidence-plot", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("mean confidence (1m) per model, last 30 min")
        plt.xlabel("minutes ago")
        # x = 0 is the newest point (the range query's end), not the wall clock.
        now = max((t for points in snapshot.confidence.values() for t, _ in points), default=0.0)
        drawn = False
        for model, points in sorted(snapshot.confidence.items()):
            if not self.keep(model) or not points:
                continue
            plt.plot(
                [(t - now) / 60 for t, _ in points],
                [v for _, v in points],
                label=printable(model, 40),
                marker="braille",
            )
            drawn = True
        if not drawn:
            plt.text("no data", x=0, y=0.5)
        plt.xlim(-q.CONFIDENCE_WINDOW_S / 60, 0)
        widget.refresh()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "models-table" and event.row_key.value:
            self.post_message(RememberSelection(model=event.row_key.value))
            if self.clients_of is None or self.clients_of.model != event.row_key.value:
                self._load_clients()
        elif event.data_table.id == "model-clients-table" and self.clients_of is not None:
            client = event.row_key.value
            self.post_message(RememberSelection(client=client, model=self.clients_of.model))

    def selected_model(self) -> str | None:
        table = self.query_one("#models-table", DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @work(exclusive=True, group="model-clients", exit_on_error=False)
    async def _load_clients(self) -> None:
        model = self.selected_model()
        title = self.query_one("#model-clients-title", Static)
        if model is None:
            title.update(Text("clients: no model selected", style="dim"))
            return
        try:
            found = await fetch_model_clients(self.context.backends, model)
        except ConsoleError as exc:
            heading = Text(f"clients of {printable(model, 40)}  ", style="bold")
            heading.append("✖ " + printable(str(exc), 120), style="red")
            title.update(heading)  # the last rows stay, under the reason
            return
        self.clients_of = found
        self._show_clients(found)

    def _show_clients(self, found: ModelClients) -> None:
        heading = Text(f"clients of {printable(found.model, 40)}, suspicious first", style="bold")
        heading.append(f"  {len(found.rows)} of {found.listed} listed")
        if found.listed > len(found.rows):
            heading.append(" (2 Clients: all of them)", style="dim")
        for left_out in found.truncated:
            heading.append("  ")
            heading.append(f" TRUNCATED: {left_out} ", style="bold white on red")
        self.query_one("#model-clients-title", Static).update(heading)
        now = self.context.now()
        rows = [(row.client, summary_cells(row, now)) for row in found.rows]
        sync_rows(self.query_one("#model-clients-table", DataTable), rows)

    def action_rollback(self) -> None:
        model = self.selected_model()
        if model is None:
            self.notify("no model selected", severity="warning")
            return
        self.post_message(OpenRunbook("rollback-model", {"model": model}))


def _trend(points: list[float]) -> Text:
    """A sparkline over the series' own range: confidence moves in its last decimals."""
    if not points:
        return Text("no data", style="dim")
    low, high = min(points), max(points)
    if high - low < 1e-9:
        return sparkline([0.5] * len(points), 1.0)
    return sparkline([v - low for v in points], high - low)
