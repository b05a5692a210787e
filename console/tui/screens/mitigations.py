"""Mitigations: blocks, budgets and output hardenings in force (with expiry), shadow budgets
with what they would have refused, and the registry changes the console made (promotions,
rollbacks, alias moves); revert a block, a budget, a hardening or a registry change with one key
(through the runbooks, so it is audited: champion goes back through promote-model, which the
robustness gate judges, or rollback-model, ``console.views.mitigations.revert_of``)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from console.tui.messages import OpenRunbook
from console.tui.screens.base import ViewScreen
from console.tui.text import age, plain, printable
from console.tui.widgets.keyed_table import sync_rows
from console.views.mitigations import (
    MitigationsSnapshot,
    RegistryChange,
    Revert,
    fetch_mitigations,
    revert_of,
    shadow_line,
)


class MitigationsScreen(ViewScreen[MitigationsSnapshot]):
    VIEW = "mitigations"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *ViewScreen.BINDINGS,
        Binding("u", "unblock", "Unblock"),
        Binding("x", "restore_budget", "Restore budget"),
        Binding("h", "unharden", "Full answers"),
        Binding("z", "revert_registry", "Revert alias"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static(Text("blocks", style="bold"))
        blocks: DataTable[Text] = DataTable(id="blocks-table", cursor_type="row")
        blocks.add_columns("client", "expires in", "reason", "operator", "run")
        yield blocks
        yield Static(Text("query budgets", style="bold"))
        budgets: DataTable[Text] = DataTable(id="budgets-table", cursor_type="row")
        budgets.add_columns("client", "qpm", "was", "operator", "set", "run")
        yield budgets
        yield Static(Text("shadow budgets (refuse nothing)", style="bold"))
        shadows: DataTable[Text] = DataTable(id="shadow-table", cursor_type="row")
        shadows.add_columns("client", "would have", "enforced now", "operator", "set", "run")
        yield shadows
        yield Static(Text("output hardenings", style="bold"))
        hardenings: DataTable[Text] = DataTable(id="hardenings-table", cursor_type="row")
        hardenings.add_columns("client", "answers", "expires in", "operator", "run")
        yield hardenings
        yield Static("", id="registry-changes-title")
        changes: DataTable[Text] = DataTable(id="registry-table", cursor_type="row")
        changes.add_columns("when", "runbook", "target", "before", "after", "operator")
        yield changes

    async def fetch(self) -> MitigationsSnapshot:
        return await fetch_mitigations(self.context.backends)

    def has_no_data(self, snapshot: MitigationsSnapshot) -> bool:
        return not (
            snapshot.blocks or snapshot.budgets or snapshot.hardenings or snapshot.registry_changes
        )

    def warnings(self, snapshot: MitigationsSnapshot) -> list[str]:
        return [snapshot.audit_error] if snapshot.audit_error else []

    def show_snapshot(self, snapshot: MitigationsSnapshot) -> None:
        now = self.context.now()
        self._sync(
            "#blocks-table",
            [
                (
                    b.client,
                    [
                        plain(b.client, "bold red"),
                        Text(age(max(0.0, (b.expires_at - now).total_seconds()))),
                        plain(b.reason),
                        plain(b.operator),
                        plain(b.run_id),
                    ],
                )
                for b in snapshot.blocks
                if self.keep(b.client, b.reason, b.operator)
            ],
        )
        self._sync(
            "#budgets-table",
            [
                (
                    g.client,
                    [
                        plain(g.client, "bold yellow"),
                        Text(str(g.qpm)),
                        Text("default" if g.previous_qpm is None else str(g.previous_qpm)),
                        *_set_by(g.operator, g.set_at, g.run_id, now),
                    ],
                )
                for g in snapshot.enforced_budgets
                if self.keep(g.client, g.operator)
            ],
        )
        self._sync(
            "#shadow-table",
            [
                (
                    g.client,
                    [
                        plain(g.client, "bold cyan"),
                        plain(shadow_line(g, snapshot.totals(g))),
                        Text("default" if g.enforced_qpm is None else f"{g.enforced_qpm} qpm"),
                        *_set_by(g.operator, g.set_at, g.run_id, now),
                    ],
                )
                for g in snapshot.shadow_budgets
                if self.keep(g.client, g.operator)
            ],
        )
        self._sync(
            "#hardenings-table",
            [
                (
                    h.client,
                    [
                        plain(h.client, "bold magenta"),
                        plain(h.label),
                        Text(age(max(0.0, (h.expires_at - now).total_seconds()))),
                        plain(h.operator),
                        plain(h.run_id),
                    ],
                )
                for h in snapshot.hardenings
                if self.keep(h.client, h.operator)
            ],
        )
        self._sync(
            "#registry-table",
            [
                (
                    key,
                    [
                        Text(f"{c.time:%H:%M:%S}"),
                        plain(c.runbook),
                        plain(c.target),
                        plain(c.before),
                        plain(c.after),
                        plain(c.operator),
                    ],
                )
                for key, c in change_keys(snapshot.registry_changes).items()
            ],
        )
        title = Text("registry changes made by the console (audit log)", style="bold")
        if snapshot.audit_error:
            title.append("  ✖ " + printable(snapshot.audit_error, 160), style="red")
        self.query_one("#registry-changes-title", Static).update(title)

    def _sync(self, table_id: str, rows: list[tuple[str, list[Text]]]) -> None:
        sync_rows(self.query_one(table_id, DataTable), rows)

    def _selected(self, table_id: str) -> str | None:
        table = self.query_one(table_id, DataTable)
        if table.row_count == 0:
            self.notify("nothing selected", severity="warning")
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def action_unblock(self) -> None:
        if client := self._selected("#blocks-table"):
            self.post_message(OpenRunbook("unblock-client", {"client": client}))

    def action_unharden(self) -> None:
        if client := self._selected("#hardenings-table"):
            self.post_message(OpenRunbook("unharden-outputs", {"client": client}))

    def action_restore_budget(self) -> None:
        """Restore the selected budget, or remove the selected shadow budget."""
        shadows = self.query_one("#shadow-table", DataTable)
        table = "#shadow-table" if shadows.has_focus else "#budgets-table"
        if client := self._selected(table):
            self.post_message(OpenRunbook("restore-query-budget", {"client": client}))

    def action_revert_registry(self) -> None:
        """Undo the selected change: a rollback with promote-model (through the gate), a
        promotion with rollback-model, any other alias with set-model-alias."""
        key = self._selected("#registry-table")
        if key is None or self.snapshot is None:
            return
        change = change_keys(self.snapshot.registry_changes).get(key)
        if change is None:
            return
        revert = revert_of(change)
        if not isinstance(revert, Revert):
            self.notify(printable(revert, 160), severity="warning", markup=False)
            return
        if revert.note:
            self.notify(printable(f"{revert.runbook}: {revert.note}", 160), markup=False)
        self.post_message(OpenRunbook(revert.runbook, revert.params))


def change_keys(changes: list[RegistryChange]) -> dict[str, RegistryChange]:
    """Each registry change by its row key, in order: its audit record's sequence number (with
    a suffix for a number seen again: the log's tail is shown as read, even if tampered)."""
    keyed: dict[str, RegistryChange] = {}
    for change in changes:
        key, again = str(change.seq), 0
        while key in keyed:
            again += 1
            key = f"{change.seq}.{again}"
        keyed[key] = change
    return keyed


def _set_by(operator: str, set_at: datetime, run_id: str, now: datetime) -> list[Text]:
    """A budget's who, how long ago and which run: the last cells of both budget tables."""
    return [
        plain(operator),
        Text(age(max(0.0, (now - set_at).total_seconds())) + " ago"),
        plain(run_id),
    ]
