"""Snapshot of the Fleet view on the recorded incident (tests/snapshot_apps/recorded.py), its
registry versions carrying robustness records (champion 2 missing the gate, 1 passing) and
their evaluation runs (an earlier one of each version, and one of another artifact, left out),
its traffic counters answered, an incident and a drill of the window in their files. Compared
cell by cell with the reviewed SVG in __snapshots__/; update it only after reading the report:
`pytest tests/snapshots/test_fleet_snapshot.py --snapshot-update`."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from console.adapters.mlflow import ModelVersion
from console.adapters.mlflow_tracking import Run
from console.adapters.prometheus import QueryResult, Sample
from console.config_robustness import RobustnessSection
from console.incidents.store import IncidentStore
from console.robustness import EVASION_ATTACKS, AttackFigures, RobustnessRecord
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


RECORDS = (
    (VERSIONS[0], 0.38, "2026-11-02T09:00:00Z", "run-v1-b"),
    (VERSIONS[1], 0.64, "2026-11-20T09:00:00Z", "run-v2-b"),
)
"""Each version's record: its FGSM figure (the worst), when, and the run it names."""
EARLIER_RUNS = (
    (VERSIONS[0], 0.45, "2026-11-01T09:00:00Z", "run-v1-a"),
    (VERSIONS[1], 0.52, "2026-11-19T09:00:00Z", "run-v2-a"),
)
"""Evaluations before the last of each version (run metrics, unsigned)."""


def _record(v: ModelVersion, fgsm: float, at: str, run_id: str) -> RobustnessRecord:
    gate = RobustnessSection()
    attacks = {
        name: AttackFigures(
            attack=name,
            adversarial_success_rate=fgsm if name == "fgsm" else 0.05,
            samples=gate.samples,
        )
        for name in sorted({"fgsm", *gate.attacks} & EVASION_ATTACKS)
    }
    return RobustnessRecord(
        model=MODEL,
        version=v.version,
        onnx_sha256=v.tags["onnx_sha256"],
        evaluated_at=at,
        clean_accuracy=0.96,
        detector_fpr=0.04,
        detector_threshold=0.5,
        epsilon=gate.epsilon,
        holdout=gate.holdout,
        samples=gate.samples,
        attacks=attacks,
        run_id=run_id,
    )


def _versioned() -> list[ModelVersion]:
    return [
        v.model_copy(update={"tags": {**v.tags, **_record(v, *rest).to_tags()}})
        for v, *rest in RECORDS
    ]


def _run(v: ModelVersion, rate: float, at: str, run_id: str, sha256: str = "") -> Run:
    started = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return Run(
        run_id=run_id,
        experiment_id="7",
        status="FINISHED",
        start_time_ms=int(started.timestamp() * 1000),
        tags={
            "aml.model": MODEL,
            "aml.version": v.version,
            "aml.onnx_sha256": sha256 or v.tags["onnx_sha256"],
        },
        params={"epsilon": f"{RobustnessSection().epsilon:g}"},
        metrics={"max_adversarial_success": rate},
    )


class EvaluatedRegistry(RecordedRegistry):
    async def list_versions(self, name: str) -> list[ModelVersion]:
        return _versioned()

    async def get_experiment_id(self, name: str) -> str | None:
        return "7" if name == "aml-robustness" else None

    async def search_runs(
        self, experiment_ids: Any, filter_string: str = "", **_: Any
    ) -> list[Run]:
        """Newest first, as asked; one run of an artifact no trusted record vouches for."""
        runs = [_run(*r) for r in (*EARLIER_RUNS, *RECORDS)]
        runs.append(_run(VERSIONS[1], 0.01, "2026-11-21T09:00:00Z", "run-forged", "0" * 64))
        return sorted(runs, key=lambda r: r.start_time_ms or 0, reverse=True)


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
