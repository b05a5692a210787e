"""Models: latency P50/P95/P99, error and flag rates, confidence shift (z-score and the mean
confidence over the last 30 minutes), and the registry's versions and aliases."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from console.tui.screens.base import ViewScreen
from console.tui.text import number, plain, printable
from console.tui.widgets.plots import sparkline
from console.views import queries as q
from console.views.models import ModelsSnapshot, fetch_models

MS = "{:.1f} ms"


class ModelsScreen(ViewScreen[ModelsSnapshot]):
    VIEW = "models"
    QUERIES = (
        q.MODEL_REQUESTS,
        q.MODEL_LATENCY_P50,
        q.MODEL_LATENCY_P95,
        q.MODEL_LATENCY_P99,
        q.MODEL_ERRORS,
        q.MODEL_FLAG_RATE,
        q.MODEL_CONFIDENCE_Z,
        q.MODEL_CONFIDENCE,
    )
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *ViewScreen.BINDINGS,
        Binding("R", "rollback", "Roll back"),
    ]

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="models-table", cursor_type="row")
        table.add_columns("model", "req/s", "P50", "P95", "P99", "errors", "flagged",
                          "conf. z", "confidence, 30 min")  # fmt: skip
        yield table
        yield Static("", id="registry-title")
        versions: DataTable[Text] = DataTable(id="versions-table", cursor_type="row")
        versions.add_columns("model", "version", "aliases", "kind", "status", "onnx sha256")
        yield versions

    async def fetch(self) -> ModelsSnapshot:
        return await fetch_models(self.console_app.sources)

    def has_no_data(self, snapshot: ModelsSnapshot) -> bool:
        return all(r.requests is None for r in snapshot.rows)

    def warnings(self, snapshot: ModelsSnapshot) -> list[str]:
        extra = [f"registry: {snapshot.registry_error}"] if snapshot.registry_error else []
        return [*snapshot.warnings, *extra]

    def show_snapshot(self, snapshot: ModelsSnapshot) -> None:
        table = self.query_one("#models-table", DataTable)
        table.clear()
        for row in snapshot.rows:
            if not self.keep(row.model):
                continue
            points = [v for _, v in snapshot.confidence.get(row.model, [])]
            z = row.confidence_z
            table.add_row(
                plain(row.model, "bold"),
                number(row.requests),
                number(None if row.p50_s is None else row.p50_s * 1e3, MS),
                number(None if row.p95_s is None else row.p95_s * 1e3, MS),
                number(None if row.p99_s is None else row.p99_s * 1e3, MS),
                number(row.error_ratio, "{:.1%}"),
                number(row.flag_rate, "{:.1%}"),
                number(z, "{:+.1f}", "bold red" if z is not None and abs(z) > 3 else ""),
                sparkline(points[-40:], 1.0) if points else Text("no data", style="dim"),
                key=row.model,
            )
        versions = self.query_one("#versions-table", DataTable)
        versions.clear()
        for model, rows in snapshot.versions.items():
            for v in rows:
                versions.add_row(
                    plain(model),
                    plain(v.version, "bold" if "champion" in v.aliases else ""),
                    plain(", ".join(v.aliases), "green" if "champion" in v.aliases else ""),
                    plain(v.kind),
                    plain(v.status),
                    plain(v.sha256[:16]),
                )
        title = Text("registry (MLflow)", style="bold")
        if snapshot.registry_error:
            title.append("  ✖ " + printable(snapshot.registry_error, 160), style="red")
        self.query_one("#registry-title", Static).update(title)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "models-table" and event.row_key.value:
            self.console_app.remember(model=event.row_key.value)

    def action_rollback(self) -> None:
        table = self.query_one("#models-table", DataTable)
        if table.row_count == 0:
            self.notify("no model selected", severity="warning")
            return
        model = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""
        self.console_app.open_runbook("rollback-model", {"model": model})
