"""Runbooks: every runbook of the runbook folders (the invalid ones too, with why), the selected
one's parameters and steps; enter opens it with its parameters prefilled from what was last
selected in the other views (client, model, alert)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from console.tui.messages import OpenLoadedRunbook
from console.tui.screens.base import ViewScreen
from console.tui.text import plain, printable
from console.tui.widgets.keyed_table import sync_rows
from console.views.runbooks import RunbookEntry, RunbooksSnapshot, fetch_runbooks


class RunbooksScreen(ViewScreen[RunbooksSnapshot]):
    VIEW = "runbooks"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *ViewScreen.BINDINGS,
        Binding("enter", "open", "Open"),
    ]

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="runbooks-table", cursor_type="row")
        table.add_columns("runbook", "title", "target", "parameters", "steps", "file")
        yield table
        yield Static("", id="runbook-detail")

    async def fetch(self) -> RunbooksSnapshot:
        return await fetch_runbooks(self.context.backends)

    def has_no_data(self, snapshot: RunbooksSnapshot) -> bool:
        return not snapshot.entries

    def warnings(self, snapshot: RunbooksSnapshot) -> list[str]:
        bad = [e.name for e in snapshot.entries if not e.valid]
        return [f"{len(bad)} runbook(s) do not validate: {', '.join(bad)}"] if bad else []

    def show_snapshot(self, snapshot: RunbooksSnapshot) -> None:
        table = self.query_one("#runbooks-table", DataTable)
        rows: list[tuple[str, list[Text]]] = []
        for entry in snapshot.entries:
            rb = entry.loaded.runbook if entry.loaded else None
            if not self.keep(entry.name, rb.title if rb else "", *(rb.parameters if rb else ())):
                continue
            if rb is None:
                rows.append(
                    (
                        str(entry.path),
                        [
                            plain(entry.name, "bold red"),
                            plain("INVALID", "bold red"),
                            Text(""),
                            Text(""),
                            Text(""),
                            plain(entry.path.name, "dim"),
                        ],
                    )
                )
                continue
            params = " ".join(f"{n}{'*' if p.required else ''}" for n, p in rb.parameters.items())
            rows.append(
                (
                    str(entry.path),
                    [
                        plain(rb.name, "bold"),
                        plain(rb.title, limit=60),
                        plain(rb.target, "dim", limit=40),
                        plain(params, limit=60),
                        Text(" → ".join(s.action for s in rb.steps), style="cyan"),
                        plain(entry.path.name, "dim"),
                    ],
                )
            )
        sync_rows(table, rows)  # the cursor stays on its row's key
        self._show_detail()

    def selected(self) -> RunbookEntry | None:
        key = self.cursor_key("#runbooks-table")
        if key is None or self.snapshot is None:
            return None
        return next((e for e in self.snapshot.entries if str(e.path) == key), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def _show_detail(self) -> None:
        entry = self.selected()
        detail = self.query_one("#runbook-detail", Static)
        if entry is None:
            detail.update(Text("no runbook selected", style="dim"))
            return
        if entry.loaded is None:
            text = Text(f"{entry.path} does not validate:\n", style="bold red")
            for problem in entry.problems[:8]:
                text.append(f"  {printable(problem, 300)}\n", style="red")
            detail.update(text)
            return
        rb = entry.loaded.runbook
        text = Text(printable(rb.description, 400) + "\n", style="dim")
        context = self.context.selection
        for name, spec in rb.parameters.items():
            text.append(f"  {name}", style="bold")
            text.append(f" ({spec.type}{', required' if spec.required else ''})")
            if name in context:
                text.append(f"  ← {printable(context[name], 60)} (selected)", style="green")
            elif spec.default is not None:
                text.append(f"  default {printable(spec.default, 60)}", style="dim")
            if spec.description:
                text.append(f"  {printable(spec.description, 100)}", style="dim")
            text.append("\n")
        for i, step in enumerate(rb.steps, 1):
            comp = step.compensate if isinstance(step.compensate, str) else step.compensate.action
            text.append(f"  {i}. {step.id}: {step.action}", style="cyan")
            text.append(
                f"  timeout {step.timeout}, retries {step.retries}, undo {comp}\n", style="dim"
            )
        detail.update(text)

    def action_open(self) -> None:
        entry = self.selected()
        if entry is None or entry.loaded is None:
            self.notify("select a valid runbook", severity="warning")
            return
        context = self.context.selection
        params = {n: context[n] for n in entry.loaded.runbook.parameters if n in context}
        self.post_message(OpenLoadedRunbook(entry.loaded, params))
