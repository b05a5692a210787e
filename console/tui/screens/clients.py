"""Clients: the clients that matter first (console/views/client_selection.py), each with why it
is listed, its request rate with its last ten minutes as a heat strip, extraction score, flagged
inputs, refused share, and block, budget or hardening; the count of active and listed clients
and a badge for anything left out; a "more" row paging through the rest by each column; sort keys
(shift+letter, as k9s); ``/`` also searches the whole fleet by client id. Below, from the
gateway's own state, the clients counted as ``other`` (no label slot), riskiest first, which the
same keys act on when that table has the focus."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from console.adapters.gateway_state import GatewayClients
from console.adapters.policy_records import Block, Budget
from console.tui.context import ScreenContext
from console.tui.messages import OpenReplay, OpenRunbook, RememberSelection
from console.tui.screens.base import ViewScreen
from console.tui.text import age, number, plain
from console.tui.widgets.client_cells import extraction_cell, policy_cell, why_cell
from console.tui.widgets.keyed_table import sync_rows
from console.tui.widgets.plots import heat_strip
from console.tui.widgets.status import PanelState, render_badge
from console.views import queries as q
from console.views.client_selection import EXTRACTION_ALERT, TOP_PER_CRITERION
from console.views.clients import ClientRow, ClientsSnapshot, fetch_clients, unlabelled_row

MORE_KEY = "more"
"""The row key of the "more" row: a client row's key is a JSON list, so none is equal to it."""
SORTS: dict[str, tuple[str, Callable[[ClientRow], Any]]] = {
    "suspicion": ("why", lambda r: 0),  # the view's own order (alerts, then extraction)
    "client": ("client", lambda r: r.client),
    "model": ("model", lambda r: r.model),
    "rate": ("req/s", lambda r: -r.rate),
    "extraction": ("extraction", lambda r: -(r.extraction or 0.0)),
    "flagged": ("flagged/s", lambda r: -(r.flagged_rate or 0.0)),
    "refused": ("refused", lambda r: -(r.refused_ratio or 0.0)),
}
"""Sort name -> (column, key): descending for figures, ascending for names."""


class ClientsScreen(ViewScreen[ClientsSnapshot]):
    VIEW = "clients"
    DEFAULT_SORT = "suspicion"
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
        Binding("W", "sort('suspicion')", "Sort: why", show=False),
        Binding("N", "sort('client')", "Sort: client", show=False),
        Binding("M", "sort('model')", "Sort: model", show=False),
        Binding("T", "sort('rate')", "Sort: req/s", show=False),
        Binding("E", "sort('extraction')", "Sort: extraction", show=False),
        Binding("F", "sort('flagged')", "Sort: flagged", show=False),
        Binding("X", "sort('refused')", "Sort: refused", show=False),
    ]

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(context)
        self.policy_panel = PanelState()
        """The policy store's own state: Redis can be down while Prometheus answers."""
        self.last_policy: dict[str, tuple[Block | None, Budget | None]] = {}
        self.gateway_panel = PanelState()
        """The gateway's own per-client state: who has no label slot (``other``)."""
        self.last_unlabelled: GatewayClients | None = None
        self.more = 0
        """Pages of K more clients per column the "more" row has asked for."""

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(
            id="clients-table", cursor_type="row", zebra_stripes=True
        )
        table.add_columns(
            "model",
            "client",
            "why",
            "req/s",
            "last 10 min",
            "extraction",
            "flagged/s",
            "refused",
            "policy",
        )
        yield table
        yield Static("", id="clients-count")
        yield Static("", id="policy-status")
        other: DataTable[Text] = DataTable(id="other-table", cursor_type="row", zebra_stripes=True)
        other.add_columns(
            "counted as other", "risk", "extraction", "flag rate", "refused", "answered/s", "idle"
        )
        yield other
        yield Static("", id="gateway-status")

    async def fetch(self) -> ClientsSnapshot:
        return await fetch_clients(self.context.backends, self.more, self.filter_text)

    def apply_filter(self, text: str) -> None:
        super().apply_filter(text)
        self.action_refresh_now()  # `/` searches the whole fleet, not only the listed rows

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value == MORE_KEY:
            self.more += 1
            self.action_refresh_now()

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
        self._show_count(snapshot)
        table = self.query_one("#clients-table", DataTable)
        strips = dict(zip(snapshot.heatmap.rows, snapshot.heatmap.values, strict=True))
        top = max((v for row in snapshot.heatmap.values for v in row), default=0.0)
        now = self.context.now()
        shown = [r for r in snapshot.rows if self.keep(r.model, r.client, r.why)]
        if self.sort_by != "suspicion" or self.sort_reversed:
            shown.sort(key=SORTS[self.sort_by][1], reverse=self.sort_reversed)  # stable
        rows: list[tuple[str, list[Text]]] = []
        for row in shown:
            strip = strips.get((row.model, row.client))
            hardening = row.hardening.mode if row.hardening else None
            cells = [
                plain(row.model),
                plain(row.client, "bold"),
                why_cell(row),
                number(row.rate),
                heat_strip(strip, top) if strip else Text("", style="dim"),
                extraction_cell(row.extraction),
                number(row.flagged_rate),
                number(row.refused_ratio, "{:.0%}"),
                policy_cell(*self._policy_of(row), now, hardening),
            ]
            rows.append((json.dumps([row.model, row.client]), cells))
        if snapshot.more_available:
            label = f"… more: the next {TOP_PER_CRITERION} by each column (enter)"
            more = [Text(""), Text(label, style="dim italic")] + [Text("")] * 7
            rows.append((MORE_KEY, more))
        sync_rows(table, rows)

    def _show_count(self, snapshot: ClientsSnapshot) -> None:
        text = Text()
        active = "?" if snapshot.active is None else str(snapshot.active)
        text.append(f"{len(snapshot.rows)} listed · {active} active clients", style="bold")
        column = SORTS[self.sort_by][0]
        text.append(f"  · sorted by {column}{' (reversed)' if self.sort_reversed else ''}")
        if self.filter_text:
            text.append(f"  · /{self.filter_text} (whole fleet searched)")
        if self.more:
            text.append(f"  · +{self.more * TOP_PER_CRITERION} per column")
        for left_out in snapshot.truncated:
            text.append("  ")
            text.append(f" TRUNCATED: {left_out} ", style="bold white on red")
        if snapshot.alert_error:
            text.append(f"  alerts unknown: {snapshot.alert_error}", style="yellow")
        self.query_one("#clients-count", Static).update(text)

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
        if key == MORE_KEY:
            return None
        model, client = json.loads(key) if key.startswith("[") else ("", "")
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
