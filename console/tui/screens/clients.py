"""Clients: per model and client, the request rate (top-K in PromQL) with its last ten minutes
as a heat strip, the extraction score, flagged inputs, refused share, and block or budget;
below, from the gateway's own state, the clients counted as ``other`` (no label slot), riskiest
first, which the same keys act on when that table has the focus."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from console.adapters.gateway_state import GatewayClients
from console.adapters.policy import Block, Budget
from console.tui.context import ScreenContext
from console.tui.messages import OpenReplay, OpenRunbook, RememberSelection
from console.tui.screens.base import ViewScreen
from console.tui.text import age, number, plain
from console.tui.widgets.plots import heat_strip
from console.tui.widgets.status import PanelState, render_badge
from console.views import queries as q
from console.views.clients import ClientRow, ClientsSnapshot, fetch_clients, unlabelled_row

EXTRACTION_ALERT = 0.4
"""AMLExtractionSuspected's threshold (configs/prometheus/aml-alerts.yml): scores above it
are drawn red."""


class ClientsScreen(ViewScreen[ClientsSnapshot]):
    VIEW = "clients"
    QUERIES = (
        q.CLIENT_RATE,
        q.CLIENT_HEATMAP,
        q.CLIENT_EXTRACTION,
        q.CLIENT_FLAGGED,
        q.CLIENT_REFUSED,
    )
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *ViewScreen.BINDINGS,
        Binding("b", "block", "Block"),
        Binding("l", "lower_budget", "Lower budget"),
        Binding("u", "unblock", "Unblock"),
        Binding("v", "replay", "Replay"),
    ]

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(context)
        self.policy_panel = PanelState()
        """The policy store's own state: Redis can be down while Prometheus answers."""
        self.last_policy: dict[str, tuple[Block | None, Budget | None]] = {}
        self.gateway_panel = PanelState()
        """The gateway's own per-client state: who has no label slot (``other``)."""
        self.last_unlabelled: GatewayClients | None = None

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(
            id="clients-table", cursor_type="row", zebra_stripes=True
        )
        table.add_columns(
            "model",
            "client",
            "req/s",
            "last 10 min",
            "extraction",
            "flagged/s",
            "refused",
            "policy",
        )
        yield table
        yield Static("", id="policy-status")
        other: DataTable[Text] = DataTable(id="other-table", cursor_type="row", zebra_stripes=True)
        other.add_columns(
            "counted as other", "risk", "extraction", "flag rate", "refused", "answered/s", "idle"
        )
        yield other
        yield Static("", id="gateway-status")

    async def fetch(self) -> ClientsSnapshot:
        return await fetch_clients(self.context.backends)

    def has_no_data(self, snapshot: ClientsSnapshot) -> bool:
        return not snapshot.rows

    def warnings(self, snapshot: ClientsSnapshot) -> list[str]:
        return list(snapshot.warnings)  # the policy store has a status line of its own

    def show_snapshot(self, snapshot: ClientsSnapshot) -> None:
        policy = self.policy_panel
        if snapshot.policy_error:
            policy.failed(snapshot.policy_error)  # the last known blocks and budgets stay shown
        else:
            policy.succeeded(False, (), self.context.monotonic())
            self.last_policy = {r.client: (r.block, r.budget) for r in snapshot.rows}
        status = Text("policy store (Redis)  ", style="bold")
        status.append_text(render_badge(policy, self.context.monotonic()))
        self.query_one("#policy-status", Static).update(status)
        self._show_unlabelled(snapshot)
        table = self.query_one("#clients-table", DataTable)
        current = self.selected()
        table.clear()
        strips = dict(zip(snapshot.heatmap.rows, snapshot.heatmap.values, strict=True))
        top = max((v for row in snapshot.heatmap.values for v in row), default=0.0)
        now = self.context.now()
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
                _policy(*self._policy_of(row), now),
                key=f"{row.model}\x00{row.client}",
            )
        if current is not None:
            key = f"{current.model}\x00{current.client}"
            if key in table.rows:
                table.move_cursor(row=table.get_row_index(key))

    def _show_unlabelled(self, snapshot: ClientsSnapshot) -> None:
        panel = self.gateway_panel
        if snapshot.gateway_error:
            panel.failed(snapshot.gateway_error)  # the last known list stays shown
        else:
            # Nobody in `other` is the usual answer, not a gap in the data.
            panel.succeeded(False, (), self.context.monotonic())
            self.last_unlabelled = snapshot.unlabelled
        state = self.last_unlabelled
        status = Text("gateway state  ", style="bold")
        if state is not None:
            slots = state.label_slots
            full = slots.used >= slots.capacity
            status.append(
                f"{slots.used}/{slots.capacity} label slots held",
                style="bold yellow" if full else "",
            )
            status.append(f" · {len(state.unlabelled)} active without a label  ")
        status.append_text(render_badge(panel, self.context.monotonic()))
        self.query_one("#gateway-status", Static).update(status)
        table = self.query_one("#other-table", DataTable)
        current = self.cursor_key("#other-table")
        table.clear()
        for client in state.unlabelled if state is not None else []:
            if not self.keep(client.client):
                continue
            score = max(client.extraction.values(), default=None)
            table.add_row(
                plain(client.client, "bold"),
                number(client.risk),
                number(score, style="bold red" if (score or 0) > EXTRACTION_ALERT else ""),
                number(client.flag_rate, "{:.0%}"),
                number(client.refused_share, "{:.0%}"),
                number(client.answered_rate),
                Text(age(client.idle_s)),
                key=client.client,
            )
        if current is not None and current in table.rows:
            table.move_cursor(row=table.get_row_index(current))

    def selected(self) -> ClientRow | None:
        if self.snapshot is None:
            return None
        if self.focused is not None and self.focused.id == "other-table":
            return self._selected_unlabelled()
        key = self.cursor_key("#clients-table") or ""
        model, _, client = key.partition("\x00")
        return next(
            (r for r in self.snapshot.rows if r.model == model and r.client == client), None
        )

    def _selected_unlabelled(self) -> ClientRow | None:
        """The client under the cursor of the `other` table, as a row the actions take (its
        model: the one it scores highest on; served models are few)."""
        key = self.cursor_key("#other-table")
        state = self.last_unlabelled
        found = next((c for c in state.unlabelled if c.client == key), None) if state else None
        return None if found is None else unlabelled_row(found)

    def _policy_of(self, row: ClientRow) -> tuple[Block | None, Budget | None]:
        if self.policy_panel.state == "stale":
            return self.last_policy.get(row.client, (None, None))
        return row.block, row.budget

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if row := self.selected():  # the highlighted table has the focus
            self.post_message(RememberSelection(client=row.client, model=row.model))

    def _client(self) -> ClientRow | None:
        row = self.selected()
        if row is None:
            self.notify("select a client", severity="warning")
        return row

    def action_block(self) -> None:
        if row := self._client():
            self.post_message(
                OpenRunbook("block-client", {"client": row.client, "reason": "suspicious traffic"})
            )

    def action_lower_budget(self) -> None:
        if row := self._client():
            self.post_message(OpenRunbook("lower-query-budget", {"client": row.client}))

    def action_replay(self) -> None:
        if row := self._client():
            self.post_message(OpenReplay(row.client, row.model))

    def action_unblock(self) -> None:
        if row := self._client():
            self.post_message(OpenRunbook("unblock-client", {"client": row.client}))


def _policy(block: Block | None, budget: Budget | None, now: datetime) -> Text:
    text = Text()
    if block is not None:
        left = age(max(0.0, (block.expires_at - now).total_seconds()))
        text.append(f"BLOCKED {left} left", style="bold red")
    if budget is not None:
        text.append(("  " if text else "") + budget.label, style="yellow")
    return text
