"""Drills: the game-day drills run on this lab (newest first), comparable at a glance
(contained, time to detect and to mitigate, what the attacker got, collateral), and the
selected one's timeline and the attacker's request rate with the alert and mitigation marked."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from console.drills.report import PastDrill
from console.tui.screens.base import ViewScreen
from console.tui.text import number, plain, printable
from console.tui.widgets.keyed_table import sync_rows
from console.views.drills import DrillsSnapshot, fetch_drills

MARKS = ("first-request", "alert-firing", "mitigation", "contained")


class DrillsScreen(ViewScreen[DrillsSnapshot]):
    VIEW = "drills"

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="drills-table", cursor_type="row")
        table.add_columns(
            "drill",
            "scenario",
            "responder",
            "contained",
            "detect",
            "mitigate",
            "answered",
            "attacker success",
            "benign blocked",
            "false alerts",
        )
        yield table
        with Horizontal(id="drill-detail"):
            yield Static("", id="drill-timeline")
            yield PlotextPlot(id="drill-plot")

    async def fetch(self) -> DrillsSnapshot:
        return await fetch_drills(self.context.backends)

    def has_no_data(self, snapshot: DrillsSnapshot) -> bool:
        return not snapshot.drills

    def warnings(self, snapshot: DrillsSnapshot) -> list[str]:
        bad = [d.id for d in snapshot.drills if d.data is None]
        return [f"{len(bad)} unreadable drill report(s)"] if bad else []

    def show_snapshot(self, snapshot: DrillsSnapshot) -> None:
        table = self.query_one("#drills-table", DataTable)
        rows: list[tuple[str, list[Text]]] = []
        for drill in snapshot.drills:
            data = drill.data or {}
            scores: dict[str, Any] = data.get("scores", {})
            if not self.keep(drill.id, data.get("scenario"), data.get("responder")):
                continue
            contained = scores.get("contained")
            rows.append(
                (
                    drill.id,
                    [
                        plain(drill.id, "bold"),
                        plain(data.get("scenario", "unreadable")),
                        plain(data.get("responder", "")),
                        Text(
                            "yes" if contained else "NO" if drill.data else "?",
                            style="green" if contained else "bold red",
                        ),
                        number(scores.get("time_to_detect_s"), "{:.1f} s"),
                        number(scores.get("time_to_mitigate_s"), "{:.1f} s"),
                        Text(str(scores.get("attacker_queries_answered", "–"))),
                        number(scores.get("attacker_success"), "{:.2f}"),
                        Text(
                            str(scores.get("benign_blocked", "–")),
                            style="bold red" if scores.get("benign_blocked") else "",
                        ),
                        Text(
                            str(scores.get("false_alerts", "–")),
                            style="bold red" if scores.get("false_alerts") else "",
                        ),
                    ],
                )
            )
        sync_rows(table, rows)  # the cursor stays on its row's key
        self._show_detail()

    def selected(self) -> PastDrill | None:
        key = self.cursor_key("#drills-table")
        if key is None or self.snapshot is None:
            return None
        return next((d for d in self.snapshot.drills if d.id == key), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        drill = self.selected()
        box = self.query_one("#drill-timeline", Static)
        plot = self.query_one("#drill-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        if drill is None or drill.data is None:
            reason = (drill.problem or "unreadable") if drill else "no drill selected"
            box.update(Text(reason, style="dim"))
            plot.refresh()
            return
        data = drill.data
        text = Text(
            f"{printable(data.get('scenario'))}: attacker "
            f"{printable(data.get('attacker'))} on {printable(data.get('model'))}\n",
            style="bold",
        )
        for event in data.get("timeline", []):
            style = "bold" if event.get("kind") in MARKS else "dim"
            text.append(
                f"{event.get('at_s', 0):7.1f}s {printable(event.get('kind'), 20):<18}", style=style
            )
            text.append(f" {printable(event.get('detail'), 70)}\n", style="dim")
        box.update(text)
        attacker = data.get("attacker")
        series = data.get("series", [])
        plt.title(f"{printable(attacker, 40)} requests/s at the gateway")
        if series:
            times = [row.get("at_s", 0.0) for row in series]
            plt.plot(times, [row.get(attacker, 0.0) for row in series], marker="braille")
            for event in data.get("timeline", []):
                if event.get("kind") in MARKS[1:]:
                    plt.vline(event.get("at_s", 0.0))
        plot.refresh()
