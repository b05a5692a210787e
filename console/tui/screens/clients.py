"""Clients: per model and client, the request rate (top-K in PromQL) with its last ten minutes
as a heat strip, the extraction score, flagged inputs, refused share, and block or budget."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from console.tui.screens.base import ViewScreen
from console.tui.text import age, number, plain
from console.tui.widgets.plots import heat_strip
from console.views import queries as q
from console.views.clients import ClientRow, ClientsSnapshot, fetch_clients

EXTRACTION_ALERT = 0.4
"""AMLExtractionSuspected's threshold (configs/prometheus/aml-alerts.yml): scores above it
are drawn red."""


class ClientsScreen(ViewScreen[ClientsSnapshot]):
    VIEW = "clients"
    QUERIES = (q.CLIENT_RATE, q.CLIENT_HEATMAP, q.CLIENT_EXTRACTION, q.CLIENT_FLAGGED,
               q.CLIENT_REFUSED)  # fmt: skip
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *ViewScreen.BINDINGS,
        Binding("b", "block", "Block"),
        Binding("l", "lower_budget", "Lower budget"),
        Binding("u", "unblock", "Unblock"),
    ]

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(
            id="clients-table", cursor_type="row", zebra_stripes=True
        )
        table.add_columns("model", "client", "req/s", "last 10 min", "extraction", "flagged/s",
                          "refused", "policy")  # fmt: skip
        yield table

    async def fetch(self) -> ClientsSnapshot:
        return await fetch_clients(self.console_app.sources)

    def has_no_data(self, snapshot: ClientsSnapshot) -> bool:
        return not snapshot.rows

    def warnings(self, snapshot: ClientsSnapshot) -> list[str]:
        extra = [f"policy store: {snapshot.policy_error}"] if snapshot.policy_error else []
        return [*snapshot.warnings, *extra]

    def show_snapshot(self, snapshot: ClientsSnapshot) -> None:
        table = self.query_one("#clients-table", DataTable)
        current = self.selected()
        table.clear()
        strips = dict(zip(snapshot.heatmap.rows, snapshot.heatmap.values, strict=True))
        top = max((v for row in snapshot.heatmap.values for v in row), default=0.0)
        now = self.console_app.now()
        for row in snapshot.rows:
            if not self.keep(row.model, row.client):
                continue
            strip = strips.get((row.model, row.client))
            extraction_style = "bold red" if (row.extraction or 0) > EXTRACTION_ALERT else ""
            table.add_row(
                plain(row.model),
                plain(row.client, "bold"),
                number(row.rate),
                heat_strip(strip, top) if strip else Text("", style="dim"),
                number(row.extraction, style=extraction_style),
                number(row.flagged_rate),
                number(row.refused_ratio, "{:.0%}"),
                _policy(row, now),
                key=f"{row.model}\x00{row.client}",
            )
        if current is not None:
            key = f"{current.model}\x00{current.client}"
            if key in table.rows:
                table.move_cursor(row=table.get_row_index(key))

    def selected(self) -> ClientRow | None:
        if self.snapshot is None:
            return None
        table = self.query_one("#clients-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""
        model, _, client = key.partition("\x00")
        return next(
            (r for r in self.snapshot.rows if r.model == model and r.client == client), None
        )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if row := self.selected():
            self.console_app.remember(client=row.client, model=row.model)

    def _client(self) -> ClientRow | None:
        row = self.selected()
        if row is None:
            self.notify("select a client", severity="warning")
        return row

    def action_block(self) -> None:
        if row := self._client():
            self.console_app.open_runbook(
                "block-client", {"client": row.client, "reason": "suspicious traffic"}
            )

    def action_lower_budget(self) -> None:
        if row := self._client():
            self.console_app.open_runbook("lower-query-budget", {"client": row.client})

    def action_unblock(self) -> None:
        if row := self._client():
            self.console_app.open_runbook("unblock-client", {"client": row.client})


def _policy(row: ClientRow, now: datetime) -> Text:
    text = Text()
    if row.block is not None:
        left = age(max(0.0, (row.block.expires_at - now).total_seconds()))
        text.append(f"BLOCKED {left} left", style="bold red")
    if row.budget is not None:
        text.append(("  " if text else "") + f"{row.budget.qpm} qpm", style="yellow")
    return text
