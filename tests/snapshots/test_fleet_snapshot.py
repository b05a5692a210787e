"""Snapshot of the Fleet view on the recorded incident (tests/snapshot_apps/recorded.py), its
registry versions carrying robustness records (champion 2 missing the gate, 1 passing), its
traffic counters answered, an incident and a drill of the window in their files. Compared cell
by cell with the reviewed SVG in __snapshots__/; update it only after reading the report:
`pytest tests/snapshots/test_fleet_snapshot.py --snapshot-update`."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from console.adapters.mlflow import ModelVersion
from console.adapters.prometheus import QueryResult, Sample
from console.incidents.store import IncidentStore
from console.robustness import AttackFigures, RobustnessRecord
from console.views.fleet import COST_QUERIES, COST_UNION
from console.views.models import labelled_union

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "snapshot_apps"))

from recorded import (  # noqa: E402
    MODEL,
    NOW,
    VERSIONS,
    RecordedPrometheus,
    RecordedRegistry,
    recorded_app,
)

SIZE = (200, 30)
COUNTS = (86_400.0, 5_200.0, 1_310.0, 432.0)
"""Requests, refused, flagged rows and serving seconds over the day."""


def _versioned() -> list[ModelVersion]:
    out = []
    for v, fgsm, at in (
        (VERSIONS[0], 0.38, "2026-11-02T09:00:00Z"),
        (VERSIONS[1], 0.64, "2026-11-20T09:00:00Z"),
    ):
        record = RobustnessRecord(
            model=MODEL,
            version=v.version,
            onnx_sha256=v.tags["onnx_sha256"],
            evaluated_at=at,
            clean_accuracy=0.96,
            detector_fpr=0.04,
            detector_threshold=0.5,
            epsilon=2.0,
            samples=200,
            attacks={"fgsm": AttackFigures(attack="fgsm", adversarial_success_rate=fgsm)},
        )
        out.append(v.model_copy(update={"tags": {**v.tags, **record.to_tags()}}))
    return out


class EvaluatedRegistry(RecordedRegistry):
    async def list_versions(self, name: str) -> list[ModelVersion]:
        return _versioned()


class TrafficPrometheus(RecordedPrometheus):
    async def query(self, expr: str, time: Any = None) -> QueryResult:
        if expr == COST_UNION:
            return labelled_union(
                [
                    QueryResult(
                        result_type="vector",
                        samples=[Sample(metric={"model": MODEL}, timestamp=0.0, value=value)],
                    )
                    for value in COUNTS[: len(COST_QUERIES)]
                ]
            )
        return await super().query(expr, time)


async def _settled(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    view = app.view("fleet")
    for _ in range(200):
        if view.refreshes >= 1:
            break
        await pilot.pause(0.02)
    for _ in range(5):
        await pilot.pause(0.05)
    assert view.refreshes >= 1


def test_fleet_view(snap_compare: Any, tmp_path: Path) -> None:
    app = recorded_app(tmp_path, "fleet", robustness={"cost_per_request": 0.002})
    app.backends._registry = EvaluatedRegistry()  # type: ignore[assignment]
    app.backends._prometheus = TrafficPrometheus()  # type: ignore[assignment]
    IncidentStore(app.settings).open(
        title="extraction by mallory-1",
        severity="critical",
        attack_kind="extraction",
        model=MODEL,
        client="mallory-1",
        operator="oncall",
        opened_at=NOW - timedelta(minutes=20),
    )
    drill = app.settings.run_dir / "drills" / "20261130-extraction"
    drill.mkdir(parents=True)
    report = {
        "model": MODEL,
        "started_at": (NOW - timedelta(days=1)).isoformat(),
        "scores": {"contained": True},
    }
    (drill / "report.json").write_text(json.dumps(report), encoding="utf-8")
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled)
