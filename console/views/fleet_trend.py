"""The Fleet view's trend of the adversarial success rate across evaluations: the history of
``aml-console eval`` runs (experiment ``aml-robustness``, tags ``aml.model``, ``aml.version``,
``aml.onnx_sha256``; the metric ``max_adversarial_success``), the last ``TREND_RUNS`` of each
served model.

Run metrics are not signed: anyone who can write to the tracking server can log a run with any
figure. So a run counts only when its (version, artifact sha256) is a version of the model
whose signed record is trusted (``JudgedRobustness.record``: it measured the version's current
artifact and, with keys in force, is signed by one of them). The run the record names is shown
with the record's signed figure, not the run's (at the run's start, so that every point read
from runs is ordered on one clock); other runs of that artifact (earlier
evaluations) are shown as unsigned run metrics, each point saying which it is; runs of any other
artifact are counted as left out. A version whose record names no run among those read (an
older run, a record written without one) is a point of its own. When the runs cannot be read,
the trend is each version's record alone, and says so. Every point was measured at the gate's
epsilon (a record's ``epsilon``, a run's param of that name, which eval logs): rates at other
strengths are not comparable, and are counted as left out.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from console.adapters.mlflow import MlflowRegistry, check_model_name
from console.adapters.mlflow_tracking import Run
from console.errors import ConsoleError
from console.views.models import VersionRow
from console.views.together import all_at_once, settled

EXPERIMENT = "aml-robustness"
"""Where ``aml-console eval`` records its runs (``console.evaluation.recording.EXPERIMENT``;
views may not import evaluation, a test keeps the two equal)."""
TREND_RUNS = 20
"""Evaluation runs read per model (the newest), and points kept."""
METRIC = "max_adversarial_success"

Source = Literal["record", "run"]

_experiments: weakref.WeakKeyDictionary[MlflowRegistry, str] = weakref.WeakKeyDictionary()
"""Per registry client: the id of ``EXPERIMENT``, once it exists (a refresh then makes one
search call per model, not two calls in turn)."""


@dataclass(frozen=True)
class TrendPoint:
    version: str
    evaluated_at: datetime | None
    """None when the time does not parse (registry data)."""
    max_adversarial_success: float | None
    run_id: str = ""
    source: Source = "record"
    """``record``: the version's trusted record (signed, with keys in force); ``run``: an
    evaluation run's metric (not signed) of an artifact whose record is trusted."""


@dataclass(frozen=True)
class Trend:
    points: tuple[TrendPoint, ...] = ()
    """Oldest first, at most ``TREND_RUNS``."""
    from_runs: bool = False
    """The evaluation runs were read (else: each version's record only)."""
    left_out: int = 0
    """Runs read that no trusted record vouches for (another artifact, an untrusted record)."""
    unchecked: str = ""
    """Set when the records were taken without a signature check (no key in force), and why."""
    other_strength: int = 0
    """Trusted records and runs measured at another epsilon than the gate's, or (runs) at one
    not recorded: their rates are not comparable, so they are not points."""
    epsilon: float = 0.0
    """The gate's epsilon every point was measured at."""

    @property
    def unsigned(self) -> int:
        return sum(1 for p in self.points if p.source == "run")

    def describe(self) -> str:
        """``7 evaluation(s) (2 signed record(s), 5 run metric(s) of trusted artifacts); 1
        run(s) left out (no trusted record of their artifact)``, or ``each version's last
        record (...)``; with no key in force the records are not called signed, and why."""
        records = "record(s)" if self.unchecked else "signed record(s)"
        if not self.from_runs:
            text = "each version's last record (evaluation runs not read)"
        else:
            text = (
                f"{len(self.points)} evaluation(s) ({len(self.points) - self.unsigned} "
                f"{records}, {self.unsigned} run metric(s) of trusted artifacts)"
            )
        if self.unchecked:
            text += f"; records {self.unchecked}"
        if self.left_out:
            text += f"; {self.left_out} run(s) left out (no trusted record of their artifact)"
        if self.other_strength:
            text += (
                f"; {self.other_strength} left out (measured at another epsilon than the "
                f"gate's {self.epsilon:g}, or not recorded)"
            )
        return text


async def evaluation_runs(registry: MlflowRegistry, names: tuple[str, ...]) -> dict[str, list[Run]]:
    """Each model's newest ``TREND_RUNS`` finished evaluation runs (none before the first
    evaluation made the experiment). Raises the first ConsoleError."""
    experiment = _experiments.get(registry)
    if experiment is None:
        experiment = await registry.get_experiment_id(EXPERIMENT)
        if experiment is None:
            return {name: [] for name in names}
        _experiments[registry] = experiment  # an experiment's id never changes
    async with all_at_once() as group:
        tasks = [
            group.create_task(settled(partial(_runs_of, registry, experiment, name)))
            for name in names
        ]
    found: dict[str, list[Run]] = {}
    for name, task in zip(names, tasks, strict=True):
        runs = task.result()
        if isinstance(runs, ConsoleError):
            raise runs
        found[name] = runs
    return found


async def _runs_of(registry: MlflowRegistry, experiment: str, name: str) -> list[Run]:
    check_model_name(name)  # quoted in the filter: letters, digits, . _ - only
    return await registry.search_runs(
        [experiment],
        f"tags.`aml.model` = '{name}' and attributes.status = 'FINISHED'",
        max_results=TREND_RUNS,
        order_by=["attributes.start_time DESC"],
    )


def trend_of(versions: list[VersionRow], runs: list[Run] | None, epsilon: float) -> Trend:
    """The trend from the versions' judged records and (None: not read) the model's runs, at
    the gate's ``epsilon``."""
    trusted = {
        (v.version, v.sha256.strip().lower()): v.robustness.record
        for v in versions
        if v.robustness.record is not None
    }
    points = [
        TrendPoint(
            version,
            parse_time(record.evaluated_at),
            record.max_adversarial_success,
            record.run_id,
            "record",
        )
        for (version, _), record in trusted.items()
        if record is not None and _same(record.epsilon, epsilon)
    ]
    other = sum(1 for r in trusted.values() if r is not None and not _same(r.epsilon, epsilon))
    named = {p.run_id: i for i, p in enumerate(points) if p.run_id}
    elsewhere = {r.run_id for r in trusted.values() if r is not None and r.run_id} - set(named)
    left_out = 0
    for run in runs or []:
        at = _started(run)
        if run.run_id in elsewhere:
            continue  # the record of another strength: counted once, above
        if run.run_id in named:  # the record's signed figure stands for it, at the run's time
            index = named[run.run_id]
            if at is not None:
                points[index] = replace(points[index], evaluated_at=at)
            continue
        key = (run.tags.get("aml.version", ""), run.tags.get("aml.onnx_sha256", "").lower())
        if key not in trusted:
            left_out += 1
            continue
        if not _same(_float(run.params.get("epsilon")), epsilon):
            other += 1
            continue
        points.append(TrendPoint(key[0], at, run.metrics.get(METRIC), run.run_id, "run"))
    oldest = datetime.min.replace(tzinfo=UTC)
    points.sort(key=lambda p: (p.evaluated_at or oldest, _number(p.version), p.source))
    unchecked = next(
        (v.robustness.recorded.unchecked for v in versions if v.robustness.recorded.unchecked),
        "",
    )
    return Trend(tuple(points[-TREND_RUNS:]), runs is not None, left_out, unchecked, other, epsilon)


def _same(measured: float | None, epsilon: float) -> bool:
    return measured is not None and math.isclose(measured, epsilon, rel_tol=1e-6)


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None and len(text) < 32 else None
    except ValueError:
        return None


def _started(run: Run) -> datetime | None:
    """The run's start: every point read from runs is ordered on the tracking server's clock."""
    if run.start_time_ms is None or run.start_time_ms <= 0:
        return None
    try:
        return datetime.fromtimestamp(run.start_time_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _number(version: str) -> int:
    return int(version) if version.isdigit() else 0
