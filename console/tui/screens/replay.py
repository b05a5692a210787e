"""Replay: "is this really an attack, and does rolling back help?" The selected client's (or
alert's) sampled inputs run through the model's versions side by side, the flips marked, the
verdict on top, the selected input drawn; `R` opens the rollback runbook. The replay runs in a
worker with a progress bar; escape cancels it and leaves."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, ProgressBar, Static

from console.errors import ConsoleError
from console.tui.context import ScreenContext
from console.tui.messages import OpenRunbook
from console.tui.screens.base import TopBar
from console.tui.text import number, plain, printable

if TYPE_CHECKING:
    from console.replay.model import ReplayRequest, ReplayResult

LIMIT = 500


class ReplayScreen(Screen[None]):
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("escape", "leave", "Back (cancels)"),
        Binding("r", "rerun", "Replay again"),
        Binding("R", "rollback", "Roll back"),
    ]

    def __init__(self, context: ScreenContext, request: ReplayRequest, scope: str) -> None:
        super().__init__(name="replay")
        self.context = context
        self.request = request
        self.scope = scope
        self.result: ReplayResult | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        cfg = self.context.settings
        yield TopBar.of("replay", cfg)
        yield Static(
            Text(f"replay of {printable(self.scope, 120)}", style="bold"), id="replay-scope"
        )
        yield ProgressBar(id="replay-progress", show_eta=False)
        yield Static("", id="replay-verdict")
        table: DataTable[Text] = DataTable(id="replay-table", cursor_type="row")
        yield table
        with Horizontal(id="replay-detail"):
            yield Static("", id="replay-digit")
            yield Static("", id="replay-versions")
        yield Footer()

    def on_mount(self) -> None:
        self.action_rerun()

    def action_rerun(self) -> None:
        self.result, self.error = None, None
        self.query_one("#replay-verdict", Static).update(Text("selecting samples…", style="dim"))
        self._replay()

    @work(exclusive=True, group="replay", exit_on_error=False)
    async def _replay(self) -> None:
        from contextlib import aclosing

        from console.replay.model import BatchDone, ReplayFinished, ReplayStarted
        from console.replay.service import replay

        bar = self.query_one("#replay-progress", ProgressBar)
        verdict = self.query_one("#replay-verdict", Static)
        try:
            context = self.context
            stream = replay(context.settings, self.request, backends=context.backends)
            async with aclosing(stream) as events:
                async for event in events:
                    if isinstance(event, ReplayStarted):
                        bar.update(total=len(event.samples.records), progress=0)
                        names = ", ".join(v.label for v in event.versions)
                        count = len(event.samples.records)
                        verdict.update(
                            Text(
                                f"running {count} samples through {names} ({event.backend})…",
                                style="dim",
                            )
                        )
                    elif isinstance(event, BatchDone):
                        bar.update(total=event.total, progress=event.done)
                    elif isinstance(event, ReplayFinished):
                        self.result = event.result
        except ConsoleError as exc:
            self.error = str(exc)
            verdict.update(Text("cannot replay: " + printable(exc, 400), style="bold red"))
            return
        if self.result is not None:
            self._show(self.result)

    def _show(self, result: ReplayResult) -> None:
        summary = result.summary
        verdict = Text(printable(summary.verdict, 400), style="bold")
        verdict.append(
            f"\n{summary.samples} samples, {summary.adversarial} flagged; "
            f"{summary.flips} flip between versions ({summary.flip_rate:.0%})"
            f" · {printable(result.backend, 80)}",
            style="dim",
        )
        self.query_one("#replay-verdict", Static).update(verdict)
        table = self.query_one("#replay-table", DataTable)
        table.clear(columns=True)
        refs = result.versions
        table.add_columns(
            "time", "client", "flagged", "score", "served", *(r.label for r in refs), "flip"
        )
        for outcome in result.outcomes():
            cells = [
                Text(f"{outcome.time:%H:%M:%S}"),
                plain(outcome.client, "bold"),
                Text("yes" if outcome.adversarial else "", style="red"),
                number(outcome.detector_score),
                Text(f"v{outcome.served_version}: {outcome.served_prediction}"),
            ]
            for ref in refs:
                cells.append(
                    Text(
                        f"{outcome.predictions[ref.version]} "
                        f"({outcome.confidences[ref.version]:.2f})",
                        style="bold yellow" if outcome.flip else "",
                    )
                )
            cells.append(Text("FLIP" if outcome.flip else "", style="bold yellow"))
            table.add_row(*cells, key=outcome.sample_id)
        self._show_selected()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        from console.tui.digits import digit_rows

        result = self.result
        table = self.query_one("#replay-table", DataTable)
        if result is None or table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        index = next((i for i, r in enumerate(result.samples.records) if r.sample_id == key), None)
        if index is None:
            return
        pixels = result.samples.x[index].tolist()
        self.query_one("#replay-digit", Static).update(
            Text("\n".join(digit_rows(pixels)), style="white on black")
        )
        text = Text("per version\n", style="bold")
        for run in result.runs:
            probabilities = run.probabilities[index]
            text.append(
                f"{run.ref.label:<18} label {int(run.labels[index])} "
                f"conf {float(run.confidence[index]):.2f}  "
            )
            top = probabilities.argsort()[::-1][:3]
            text.append(
                " ".join(f"{int(c)}:{float(probabilities[c]):.2f}" for c in top), style="dim"
            )
            text.append("\n")
        self.query_one("#replay-versions", Static).update(text)

    def action_rollback(self) -> None:
        model = self.result.model if self.result else self.request.model
        if not model:
            self.notify("no model to roll back yet", severity="warning")
            return
        self.post_message(OpenRunbook("rollback-model", {"model": model}))

    def action_leave(self) -> None:
        self.workers.cancel_group(self, "replay")
        self.app.pop_screen()
