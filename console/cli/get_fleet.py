"""``aml-console get fleet``: one row per served model from the Fleet view's snapshot
(console/views/fleet.py). A source that could not be read is a warning, its fields None."""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.cli.get_rows import Filters, Listing, Row, number

if TYPE_CHECKING:
    from console.adapters.backends import Backends
    from console.views.fleet import FleetSnapshot, ServedModel

FLEET_FIELDS = (
    "model",
    "registered",
    "champion",
    "gate",
    "robustness",
    "clean_accuracy",
    "max_adversarial_success",
    "detector_fpr",
    "evaluated_at",
    "gate_misses",
    "adversarial_success_trend",
    "trend_source",
    "trend_unsigned",
    "trend_runs_left_out",
    "trend_other_strength",
    "incidents_critical",
    "incidents_warning",
    "incidents_info",
    "open_incidents",
    "drills",
    "drills_not_contained",
    "registry_changes",
    "blocks",
    "budgets",
    "shadow_budgets",
    "hardenings",
    "requests",
    "refused",
    "flagged",
    "serving_seconds",
    "unwanted_serving_seconds",
    "unwanted_cost",
    "cost_unit",
)
"""``gate``: pass, miss, or None without a usable record (``robustness`` says why).
``adversarial_success_trend``: ``version:rate`` per evaluation, oldest first, from the model's
evaluation runs of artifacts whose signed record is trusted (``trend_source`` ``runs``;
``trend_unsigned`` of them are run metrics, not signed; ``trend_runs_left_out`` runs of other
artifacts not counted; ``trend_other_strength`` records and runs measured at another epsilon
than the gate's, not counted either), or from each version's record when the runs could not
be read (``records``). The mitigations are fleet-wide (blocks, budgets and hardening are per
client); incidents, drills and registry changes count the last 30 days; the traffic the last
day."""

UNKNOWN = {
    "registry": "champions and robustness unknown",
    "incidents": "incidents unknown",
    "drills": "drills unknown",
    "mitigations": "mitigations in force unknown",
    "cost": "traffic and its cost unknown",
    "evaluations": "the trend is each version's last record only",
}


async def fleet(backends: Backends, filters: Filters) -> Listing:
    from console.views.fleet import COST_RANGE, WINDOW, fetch_fleet
    from console.views.fleet_trend import TREND_RUNS

    snapshot = await fetch_fleet(backends)
    rows = [fleet_row(snapshot, m) for m in snapshot.models]
    warnings = list(snapshot.warnings)
    warnings += [f"{panel}: {why} ({UNKNOWN[panel]})" for panel, why in snapshot.errors.items()]
    note = f"incidents, drills and alias moves: last {WINDOW.days} days; traffic: last {COST_RANGE}"
    if snapshot.runs_error is None:
        note += (
            f"; trend: the last {TREND_RUNS} evaluation runs, of artifacts with a trusted record"
        )
    force = snapshot.in_force
    if force is not None:
        note += (
            f"; in force across the fleet: {force.blocks} block(s), {force.budgets} budget(s), "
            f"{force.shadow_budgets} shadow, {force.hardenings} hardening(s)"
        )
    return Listing(FLEET_FIELDS, rows, warnings=warnings, note=note)


def fleet_row(snapshot: FleetSnapshot, m: ServedModel) -> Row:
    judged = m.robustness
    record = judged.record if judged else None
    row: Row = dict.fromkeys(FLEET_FIELDS)
    row.update(
        {
            "model": m.model,
            "registered": m.registered,
            "champion": m.champion,
            "gate": None if judged is None or judged.passes is None else _gate(judged.passes),
            "robustness": judged.quote() if judged else None,
            "gate_misses": [miss.why for miss in judged.misses] if judged else [],
            "adversarial_success_trend": [
                f"{p.version}:{p.max_adversarial_success:.4f}"
                for p in m.trend
                if p.max_adversarial_success is not None
            ],
        }
    )
    if m.registered is not None:
        history = m.history
        row["trend_source"] = "runs" if history.from_runs else "records"
        row["trend_unsigned"] = history.unsigned
        row["trend_runs_left_out"] = history.left_out if history.from_runs else None
        row["trend_other_strength"] = history.other_strength
    if record is not None:
        row["clean_accuracy"] = number(record.clean_accuracy)
        row["max_adversarial_success"] = number(record.max_adversarial_success)
        row["detector_fpr"] = number(record.detector_fpr)
        row["evaluated_at"] = record.evaluated_at
    if snapshot.incidents_error is None:
        counts = snapshot.incidents_of(m.model)
        for severity in ("critical", "warning", "info"):
            row[f"incidents_{severity}"] = counts.get(severity, 0)
        row["open_incidents"] = snapshot.open_incidents.get(m.model, 0)
    if snapshot.drills_error is None:
        drills = snapshot.drills.get(m.model)
        row["drills"] = drills.runs if drills else 0
        row["drills_not_contained"] = drills.not_contained if drills else 0
    force = snapshot.in_force
    if force is not None:
        row["registry_changes"] = force.registry_changes.get(m.model, 0)
        row["blocks"], row["budgets"] = force.blocks, force.budgets
        row["shadow_budgets"], row["hardenings"] = force.shadow_budgets, force.hardenings
    cost = snapshot.cost.get(m.model)
    if cost is not None:
        row["requests"] = number(cost.requests)
        row["refused"] = number(cost.refused)
        row["flagged"] = number(cost.flagged)
        row["serving_seconds"] = number(cost.serving_seconds)
        row["unwanted_serving_seconds"] = number(cost.unwanted_seconds)
        row["unwanted_cost"] = number(cost.priced(snapshot.cost_per_request))
        row["cost_unit"] = snapshot.cost_unit if snapshot.cost_per_request > 0 else None
    return row


def _gate(passes: bool) -> str:
    return "pass" if passes else "miss"
