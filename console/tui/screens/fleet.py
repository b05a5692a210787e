"""Fleet: every served model on one screen (the seed's executive dashboard): its champion
version and recorded robustness against the gate, the adversarial success rate across its
evaluations (its evaluation runs, counted for artifacts with a trusted record; a line says
where each trend comes from), the incidents and drills of the last 30 days, the mitigations in
force, and what the refused and flagged traffic cost to serve. Each source has its own badge:
one that fails keeps its last good figures on screen, marked stale, and the others stay live."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from console.incidents.model import SEVERITIES
from console.tui.context import ScreenContext
from console.tui.messages import RememberSelection
from console.tui.screens.base import ViewScreen
from console.tui.screens.robustness_cells import STYLES, figures_cell, gate_cell
from console.tui.text import number, plain, printable
from console.tui.widgets.keyed_table import sync_rows
from console.tui.widgets.plots import sparkline
from console.tui.widgets.status import PanelState, render_badge
from console.views.fleet import (
    COST_QUERIES,
    COST_RANGE,
    WINDOW,
    FleetSnapshot,
    ServedModel,
    TrafficCost,
    fetch_fleet,
)

PANELS = ("registry", "evaluations", "incidents", "drills", "mitigations", "cost")
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "dim"}


class FleetScreen(ViewScreen[FleetSnapshot]):
    VIEW = "fleet"
    QUERIES = COST_QUERIES

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(context)
        self.panels = {name: PanelState() for name in PANELS}
        self.shown: FleetSnapshot | None = None
        """What is on screen: the last good figures of each panel."""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="fleet-sources")
        table: DataTable[Text] = DataTable(id="fleet-table", cursor_type="row")
        table.add_columns(
            "model",
            "champion",
            "gate",
            "robustness (recorded)",
            "adv. success trend",
            f"incidents {WINDOW.days}d",
            "open",
            f"drills {WINDOW.days}d",
            "alias moves",
            f"refused {COST_RANGE}",
            f"flagged {COST_RANGE}",
            "cost",
        )
        yield table
        yield Static("", id="fleet-gate")
        yield Static("", id="fleet-trend")
        yield Static("", id="fleet-in-force")

    async def fetch(self) -> FleetSnapshot:
        return await fetch_fleet(self.context.backends, self.context.now())

    def has_no_data(self, snapshot: FleetSnapshot) -> bool:
        return not snapshot.models

    def warnings(self, snapshot: FleetSnapshot) -> list[str]:
        return list(snapshot.warnings)

    def show_snapshot(self, snapshot: FleetSnapshot) -> None:
        now = self.context.monotonic()
        errors = snapshot.errors
        for name, panel in self.panels.items():
            if name in errors:
                panel.failed(errors[name])
            else:
                panel.succeeded(False, (), now)
        shown = kept(self.shown, snapshot)
        self.shown = shown
        self._sources(now)
        rows = [(m.model, self._cells(shown, m)) for m in shown.models if self.keep(m.model)]
        sync_rows(self.query_one("#fleet-table", DataTable), rows)
        self._gate(shown)
        self._trend(shown)
        self._in_force(shown)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted model prefills the runbooks (7 Runbooks), as on the Models view."""
        if event.data_table.id == "fleet-table" and event.row_key.value:
            self.post_message(RememberSelection(model=event.row_key.value))

    def _sources(self, now: float) -> None:
        line = Text()
        for name, panel in self.panels.items():
            line.append(f"{name} ", style="bold")
            line.append_text(render_badge(panel, now))
            line.append("   ")
        self.query_one("#fleet-sources", Static).update(line)

    def _cells(self, shown: FleetSnapshot, m: ServedModel) -> list[Text]:
        champion = (
            Text("?", style="dim")
            if m.registered is None
            else plain(m.champion or ("no champion" if m.registered else "not registered"))
        )
        unread = Text("?", style="dim")
        incidents = shown.incidents_of(m.model)
        no_incidents = shown.incidents_error is not None and not shown.incidents
        drills = shown.drills.get(m.model)
        no_drills = shown.drills_error is not None and not shown.drills
        changes = shown.in_force.registry_changes.get(m.model, 0) if shown.in_force else None
        cost = shown.cost.get(m.model)
        return [
            plain(m.model, "bold"),
            champion,
            gate_cell(m.robustness),
            figures_cell(m.robustness),
            trend_cell(m),
            unread if no_incidents else severities_cell(incidents),
            unread
            if no_incidents
            else number(float(shown.open_incidents.get(m.model, 0)), "{:.0f}"),
            unread
            if no_drills
            else drills_cell(drills.runs if drills else 0, drills.not_contained if drills else 0),
            number(None if changes is None else float(changes), "{:.0f}"),
            number(cost.refused if cost else None, "{:,.0f}"),
            number(cost.flagged if cost else None, "{:,.0f}"),
            cost_cell(cost, shown.cost_per_request, shown.cost_unit),
        ]

    def _gate(self, shown: FleetSnapshot) -> None:
        """Why each champion that does not pass the gate does not (registry data: literal)."""
        text = Text("gate  ", style="bold")
        failing = [
            (m.model, m.robustness)
            for m in shown.models
            if m.robustness is not None and m.robustness.passes is not True
        ]
        if not failing:
            text.append("every served champion passes", style="dim")
        for model, judged in failing:
            text.append(printable(model, 40) + ": ", style="bold")
            text.append(printable(judged.verdict, 160), style=STYLES[judged.passes])
            text.append("   ")
        self.query_one("#fleet-gate", Static).update(text)

    def _trend(self, shown: FleetSnapshot) -> None:
        """Where each model's trend comes from: its evaluation runs (signed records and unsigned
        run metrics of trusted artifacts, and the runs left out), or its versions' records."""
        text = Text("trend  ", style="bold")
        told = [m for m in shown.models if m.registered]
        if not told:
            text.append("no served model in the registry", style="dim")
        for m in told:
            text.append(printable(m.model, 40) + ": ", style="bold")
            history = m.history
            style = "dim" if history.from_runs and not history.left_out else "yellow"
            text.append(history.describe(), style=style)
            text.append("   ")
        self.query_one("#fleet-trend", Static).update(text)

    def _in_force(self, shown: FleetSnapshot) -> None:
        text = Text("in force  ", style="bold")
        force = shown.in_force
        if force is None:
            text.append("unknown (policy store not read)", style="dim")
        else:
            text.append(
                f"{force.blocks} block(s), {force.budgets} budget(s) enforced, "
                f"{force.shadow_budgets} in shadow, {force.hardenings} hardening(s)"
            )
            fleet_wide = sum(n for model, n in force.registry_changes.items() if not model)
            if fleet_wide:
                text.append(f", {fleet_wide} registry change(s) without a model")
        unassigned = shown.incidents.get("", {})
        if unassigned:
            text.append(f"   incidents without a model ({WINDOW.days}d): ", style="bold")
            text.append_text(severities_cell(unassigned))
        self.query_one("#fleet-in-force", Static).update(text)


def kept(previous: FleetSnapshot | None, current: FleetSnapshot) -> FleetSnapshot:
    """``current``, with the last good figures of ``previous`` for each source that failed."""
    if previous is None:
        return current
    keep: dict[str, object] = {}
    before = {m.model: m for m in previous.models}
    if current.registry_error:
        keep["models"] = [before.get(m.model, m) for m in current.models]
    elif current.runs_error:  # the trend as it was from the runs, while they cannot be read
        keep["models"] = [_runs_trend(before.get(m.model), m) for m in current.models]
    if current.incidents_error:
        keep["incidents"], keep["open_incidents"] = previous.incidents, previous.open_incidents
    if current.drills_error:
        keep["drills"] = previous.drills
    if current.mitigations_error:
        keep["in_force"] = previous.in_force
    if current.cost_error:
        keep["cost"] = previous.cost
    return replace(current, **keep)  # type: ignore[arg-type]


def _runs_trend(previous: ServedModel | None, current: ServedModel) -> ServedModel:
    if previous is None or not previous.history.from_runs:
        return current
    return replace(current, history=previous.history)


def trend_cell(m: ServedModel) -> Text:
    """The worst adversarial success of each evaluation, oldest first, and the last two
    figures (``▂▅▃ 0.55 → 0.31``)."""
    rates = m.trend_rates
    if not rates:
        return Text("no evaluation", style="dim")
    text = sparkline(rates, 1.0)
    tail = " → ".join(f"{r:.2f}" for r in rates[-2:])
    text.append(f" {tail}", style="bold red" if len(rates) > 1 and rates[-1] > rates[-2] else "")
    return text


def severities_cell(counts: dict[str, int]) -> Text:
    """``2 critical 1 warning`` (nothing: ``none``)."""
    text = Text()
    for severity in SEVERITIES:
        n = counts.get(severity, 0)
        if n:
            text.append(f"{n} {severity} ", style=SEVERITY_STYLE.get(severity, ""))
    return text if text.plain else Text("none", style="dim")


def drills_cell(runs: int, not_contained: int) -> Text:
    if not runs:
        return Text("none", style="dim")
    text = Text(f"{runs}")
    if not_contained:
        text.append(f" ({not_contained} not contained)", style="bold red")
    return text


def cost_cell(cost: TrafficCost | None, per_request: float, unit: str) -> Text:
    """The refused and flagged traffic at the configured price, or in serving seconds."""
    if cost is None:
        return Text("–", style="dim")
    priced = cost.priced(per_request)
    if priced is not None:
        return Text(f"{priced:,.2f} {printable(unit, 12)}", justify="right")
    seconds = cost.unwanted_seconds
    return number(seconds, "{:,.1f} s")
