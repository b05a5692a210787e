"""Fleet view (the seed's executive dashboard): for every model in ``[models] served``, the
served (``champion``) version and its recorded robustness against the ``[robustness]`` gate,
the trend of the adversarial success rate across its versions' evaluations, the incidents and
drills of the last 30 days, the mitigations in force, and what the refused and flagged traffic
cost to serve (M8).

Every source is read at once and fails alone: the registry, the incident store, the drill
reports, the policy store (with the audit log's registry changes) and the query engine each
give their panel an error (``*_error``) while the others are shown. The trend is the history
of the model's evaluation runs, each counted only for an artifact whose signed record is
trusted (``fleet_trend``); the runs are a source of their own (``runs_error``): when they
cannot be read the trend is each version's record alone.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from console.adapters.backends import Backends
from console.adapters.mlflow_tracking import Run
from console.config import Settings
from console.drills.report import history
from console.errors import ConsoleError, DrillError, IncidentError
from console.incidents.model import SEVERITIES
from console.incidents.store import IncidentStore
from console.replay.versions import JudgedRobustness
from console.views.fleet_trend import (
    Trend,
    TrendPoint,
    evaluation_runs,
    parse_time,
    trend_of,
)
from console.views.mitigations import MitigationsSnapshot, fetch_mitigations
from console.views.models import VersionRow, instant_union, per_panel, registry_versions
from console.views.queries import PanelQuery
from console.views.together import all_at_once, settled

WINDOW = timedelta(days=30)
"""Incidents, drills and registry changes counted."""
COST_RANGE = "1d"
"""The window of the traffic counted for its cost."""

COST_REQUESTS = PanelQuery(
    "fleet.requests",
    f"Requests per model over {COST_RANGE} (every outcome)",
    f"sum by (model) (increase(aml_requests_total[{COST_RANGE}]))",
)
COST_REFUSED = PanelQuery(
    "fleet.refused",
    f"Requests refused by policy (blocked, throttled) over {COST_RANGE}",
    f'sum by (model) (increase(aml_requests_total{{outcome=~"blocked|throttled"}}[{COST_RANGE}]))',
)
COST_FLAGGED = PanelQuery(
    "fleet.flagged",
    f"Input rows the detector flagged over {COST_RANGE}",
    f"sum by (model) (increase(aml_flagged_total[{COST_RANGE}]))",
)
COST_SERVING = PanelQuery(
    "fleet.serving_seconds",
    f"Serving seconds spent over {COST_RANGE} (M8)",
    f"sum by (model) (increase(aml_request_duration_seconds_sum[{COST_RANGE}]))",
)
COST_QUERIES: tuple[PanelQuery, ...] = (COST_REQUESTS, COST_REFUSED, COST_FLAGGED, COST_SERVING)
COST_UNION = instant_union(COST_QUERIES)


@dataclass(frozen=True)
class ServedModel:
    model: str
    registered: bool | None
    """None: the registry was not read."""
    champion: str | None = None
    robustness: JudgedRobustness | None = None
    """The champion's; None without a champion."""
    history: Trend = field(default_factory=Trend)
    """The adversarial success across evaluations, and where its points come from."""

    @property
    def trend(self) -> tuple[TrendPoint, ...]:
        """Oldest first."""
        return self.history.points

    @property
    def trend_rates(self) -> list[float]:
        return [
            p.max_adversarial_success for p in self.trend if p.max_adversarial_success is not None
        ]


@dataclass(frozen=True)
class DrillCounts:
    runs: int = 0
    contained: int = 0

    @property
    def not_contained(self) -> int:
        return self.runs - self.contained


@dataclass(frozen=True)
class InForce:
    """Mitigations in force across the fleet (blocks, budgets and hardening are per client)."""

    blocks: int
    budgets: int
    shadow_budgets: int
    hardenings: int
    registry_changes: dict[str, int]
    """model -> alias moves and rollbacks by the console in the window."""


@dataclass(frozen=True)
class TrafficCost:
    """A model's traffic over ``COST_RANGE`` and what its refused and flagged part cost."""

    requests: float | None = None
    refused: float | None = None
    flagged: float | None = None
    """Flagged input rows (a request may carry several)."""
    serving_seconds: float | None = None

    @property
    def mean_seconds(self) -> float | None:
        if not self.requests or self.serving_seconds is None:
            return None
        return self.serving_seconds / self.requests

    @property
    def unwanted(self) -> float:
        """Refused requests plus flagged rows, each counted as a request."""
        return (self.refused or 0.0) + (self.flagged or 0.0)

    @property
    def unwanted_seconds(self) -> float | None:
        """``unwanted`` at the mean serving time: an upper bound (a refusal skips inference)."""
        mean = self.mean_seconds
        return None if mean is None else self.unwanted * mean

    def priced(self, cost_per_request: float) -> float | None:
        return None if cost_per_request <= 0 else self.unwanted * cost_per_request


@dataclass(frozen=True)
class FleetSnapshot:
    models: list[ServedModel]
    incidents: dict[str, dict[str, int]] = field(default_factory=dict)
    """model ("" for none) -> severity -> incidents opened in the window."""
    open_incidents: dict[str, int] = field(default_factory=dict)
    drills: dict[str, DrillCounts] = field(default_factory=dict)
    in_force: InForce | None = None
    cost: dict[str, TrafficCost] = field(default_factory=dict)
    cost_per_request: float = 0.0
    cost_unit: str = "USD"
    registry_error: str | None = None
    incidents_error: str | None = None
    drills_error: str | None = None
    mitigations_error: str | None = None
    cost_error: str | None = None
    runs_error: str | None = None
    """The evaluation runs (the trend falls back to each version's record)."""
    warnings: list[str] = field(default_factory=list)

    @property
    def errors(self) -> dict[str, str]:
        """panel -> why it could not be read."""
        found = {
            "registry": self.registry_error,
            "incidents": self.incidents_error,
            "drills": self.drills_error,
            "mitigations": self.mitigations_error,
            "cost": self.cost_error,
            "evaluations": self.runs_error,
        }
        return {k: v for k, v in found.items() if v}

    def incidents_of(self, model: str) -> dict[str, int]:
        counts = self.incidents.get(model, {})
        return {s: counts.get(s, 0) for s in SEVERITIES}


async def fetch_fleet(backends: Backends, now: datetime | None = None) -> FleetSnapshot:
    settings = backends.settings
    when = now or datetime.now(UTC)
    since = when - WINDOW
    async with all_at_once() as group:
        registry_task = group.create_task(registry_versions(backends))
        incidents_task = group.create_task(
            settled(partial(asyncio.to_thread, _incidents, settings, since))
        )
        drills_task = group.create_task(
            settled(partial(asyncio.to_thread, _drills, settings, since))
        )
        mitigations_task = group.create_task(settled(partial(fetch_mitigations, backends)))
        cost_task = group.create_task(settled(partial(backends.prometheus.query, COST_UNION)))
        runs_task = group.create_task(
            settled(partial(evaluation_runs, backends.registry, tuple(settings.models.served)))
        )
    versions, registry_error = registry_task.result()
    served = list(settings.models.served)
    gate = settings.robustness
    runs = runs_task.result()
    runs_error = str(runs) if isinstance(runs, ConsoleError) else None
    runs_by_model = {} if isinstance(runs, ConsoleError) else runs
    snapshot = FleetSnapshot(
        [
            _served(name, versions.get(name), registry_error, runs_by_model.get(name), gate.epsilon)
            for name in served
        ],
        cost_per_request=gate.cost_per_request,
        cost_unit=gate.cost_unit,
        registry_error=registry_error,
        runs_error=runs_error,
    )
    warnings: list[str] = []

    incidents = incidents_task.result()
    if isinstance(incidents, ConsoleError):
        snapshot = replace(snapshot, incidents_error=str(incidents))
    else:
        by_model, open_now, problems = incidents
        snapshot = replace(snapshot, incidents=by_model, open_incidents=open_now)
        warnings += [f"incident store: {p}" for p in problems]

    drills = drills_task.result()
    if isinstance(drills, ConsoleError):
        snapshot = replace(snapshot, drills_error=str(drills))
    else:
        snapshot = replace(snapshot, drills=drills[0])
        if drills[1]:
            warnings.append(f"{drills[1]} unreadable drill report(s)")

    mitigations = mitigations_task.result()
    if isinstance(mitigations, ConsoleError):
        snapshot = replace(snapshot, mitigations_error=str(mitigations))
    else:
        snapshot = replace(snapshot, in_force=_in_force(mitigations, since))
        if mitigations.audit_error:
            warnings.append(mitigations.audit_error)

    answer = cost_task.result()
    if isinstance(answer, ConsoleError):
        snapshot = replace(snapshot, cost_error=str(answer))
    else:
        columns = per_panel(answer, len(COST_QUERIES))
        names = sorted({m for c in columns for m in c if m} | set(served))
        cost = {n: TrafficCost(*(c.get(n) for c in columns)) for n in names}
        snapshot = replace(snapshot, cost=cost)
        warnings += answer.warnings
    return replace(snapshot, warnings=warnings)


def _served(
    name: str,
    versions: list[VersionRow] | None,
    registry_error: str | None,
    runs: list[Run] | None,
    epsilon: float,
) -> ServedModel:
    """``runs``: the model's evaluation runs; None when they were not read."""
    if versions is None:
        return ServedModel(name, None if registry_error else False)
    champion = next((v for v in versions if "champion" in v.aliases), None)
    return ServedModel(
        name,
        bool(versions),
        champion.version if champion else None,
        champion.robustness if champion else None,
        trend_of(versions, runs, epsilon),
    )


def _incidents(
    settings: Settings, since: datetime
) -> tuple[dict[str, dict[str, int]], dict[str, int], list[str]]:
    store = IncidentStore(settings)
    try:
        found = store.all()
    except OSError as exc:
        raise IncidentError(f"cannot list {store.root}: {exc.strerror or exc}") from None
    counts: dict[str, Counter[str]] = {}
    open_now: Counter[str] = Counter()
    for incident in found:
        model = incident.model or ""
        if incident.is_open:
            open_now[model] += 1
        if incident.opened_at >= since:
            counts.setdefault(model, Counter())[incident.severity] += 1
    by_model = {m: dict(c) for m, c in counts.items()}
    return by_model, dict(open_now), list(store.problems)


def _drills(settings: Settings, since: datetime) -> tuple[dict[str, DrillCounts], int]:
    try:
        past = history(settings)
    except OSError as exc:
        raise DrillError(f"cannot list the drill reports: {exc.strerror or exc}") from None
    runs: Counter[str] = Counter()
    contained: Counter[str] = Counter()
    unreadable = 0
    for drill in past:
        data = drill.data
        started = parse_time(data.get("started_at")) if data else None
        if data is None or started is None:
            unreadable += 1
            continue
        if started < since:
            continue
        model = str(data.get("model") or "")
        runs[model] += 1
        scores = data.get("scores")
        if isinstance(scores, dict) and scores.get("contained") is True:
            contained[model] += 1
    return {m: DrillCounts(n, contained[m]) for m, n in runs.items()}, unreadable


def _in_force(snapshot: MitigationsSnapshot, since: datetime) -> InForce:
    changes: Counter[str] = Counter(
        c.model or "" for c in snapshot.registry_changes if c.time >= since
    )
    return InForce(
        blocks=len(snapshot.blocks),
        budgets=len(snapshot.enforced_budgets),
        shadow_budgets=len(snapshot.shadow_budgets),
        hardenings=len(snapshot.hardenings),
        registry_changes=dict(changes),
    )
