"""Models view: latency percentiles, error and flag rates and confidence shift per model from
the query engine, the confidence over time, and each served model's versions and aliases from
the MLflow registry. The instant panels are read in one query (``INSTANT_UNION``): seven
requests cost the client more than the engine's work (benchmarks/bench_tui.py). The
registry's answer is kept between refreshes for ``REGISTRY_TTL_S``, and read again at once
when the audit log changes (a rollback or alias move by the console)."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from functools import partial

from console.adapters.backends import Backends
from console.adapters.prometheus import QueryResult
from console.errors import ConsoleError
from console.replay.versions import JudgedRobustness, judge_robustness, record_trust
from console.robustness import RecordedRobustness
from console.views import queries as q
from console.views.mitigations import AuditLogState, audit_log_state
from console.views.together import all_at_once, settled

REGISTRY_TTL_S = 15.0
"""How long a registry answer is shown before it is asked again: versions and aliases change
when someone registers or moves one; the console's own moves invalidate it at once."""


@dataclass(frozen=True)
class ModelRow:
    model: str
    requests: float | None
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    error_ratio: float | None
    flag_rate: float | None
    confidence_z: float | None


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: tuple[str, ...]
    kind: str
    sha256: str
    status: str
    robustness: JudgedRobustness = field(
        default_factory=lambda: JudgedRobustness(RecordedRobustness(None, "not evaluated"))
    )
    """What the registry records of the version's robustness, against the gate."""


@dataclass(frozen=True)
class ModelsSnapshot:
    rows: list[ModelRow]
    confidence: dict[str, list[tuple[float, float]]]
    """Mean confidence over time per model."""
    versions: dict[str, list[VersionRow]]
    warnings: list[str] = field(default_factory=list)
    registry_error: str | None = None


PANEL_LABEL = "aml_panel"
"""The label the union query puts on each sample: the index of its panel in MODEL_INSTANT."""


def instant_union(queries: tuple[q.PanelQuery, ...]) -> str:
    """One instant query answering every one of ``queries``, each sample labelled with its
    query's index. ``or`` keeps them all: the panel label makes every label set distinct."""
    return " or ".join(
        f'label_replace({pq.promql}, "{PANEL_LABEL}", "{index}", "", "")'
        for index, pq in enumerate(queries)
    )


INSTANT_UNION = instant_union(q.MODEL_INSTANT)


def labelled_union(results: list[QueryResult]) -> QueryResult:
    """What the engine answers to ``instant_union`` of queries answering ``results`` (for
    sources that answer query by query, such as a recording)."""
    samples = [
        sample.model_copy(update={"metric": {**sample.metric, PANEL_LABEL: str(index)}})
        for index, result in enumerate(results)
        for sample in result.samples
    ]
    warnings = [w for result in results for w in result.warnings]
    return QueryResult(result_type="vector", samples=samples, warnings=warnings)


def per_panel(result: QueryResult, panels: int) -> list[dict[str, float]]:
    """model -> value for each panel of a union's answer."""
    columns: list[dict[str, float]] = [{} for _ in range(panels)]
    for sample in result.samples:
        index = sample.metric.get(PANEL_LABEL, "")
        if index.isdigit() and int(index) < panels:
            columns[int(index)][sample.metric.get("model", "")] = sample.value
    return columns


async def fetch_models(backends: Backends) -> ModelsSnapshot:
    prom = backends.prometheus
    end = time.time()
    instant = q.MODEL_INSTANT
    start = end - q.CONFIDENCE_WINDOW_S
    async with all_at_once() as group:
        instant_task = group.create_task(prom.query(INSTANT_UNION))
        confidence_task = group.create_task(
            prom.query_range(q.MODEL_CONFIDENCE.promql, start, end, q.CONFIDENCE_STEP_S)
        )
        registry_task = group.create_task(registry_versions(backends))
    answer = instant_task.result()
    confidence = confidence_task.result()
    versions, registry_error = registry_task.result()
    columns = per_panel(answer, len(instant))
    names = sorted({m for c in columns for m in c} | set(backends.settings.models.served))
    rows = [ModelRow(name, *(c.get(name) for c in columns)) for name in names]
    warnings = [*answer.warnings, *confidence.warnings]
    series = {s.metric.get("model", ""): list(s.points) for s in confidence.series}
    return ModelsSnapshot(rows, series, versions, warnings, registry_error)


@dataclass(frozen=True)
class _RegistryRead:
    at: float
    """time.monotonic() of the read."""
    names: tuple[str, ...]
    audit: AuditLogState
    versions: dict[str, list[VersionRow]]


_registry_read: weakref.WeakKeyDictionary[Backends, _RegistryRead] = weakref.WeakKeyDictionary()
"""Per Backends: the last registry read that answered for every served model."""


async def registry_versions(backends: Backends) -> tuple[dict[str, list[VersionRow]], str | None]:
    """Every served model's versions: the last answer while it is fresh (``REGISTRY_TTL_S``,
    same models, audit log unchanged), else read again."""
    names = tuple(backends.settings.models.served)
    audit = audit_log_state(backends.settings)
    now = time.monotonic()
    last = _registry_read.get(backends)
    if (
        last is not None
        and last.names == names
        and last.audit == audit
        and 0 <= now - last.at < REGISTRY_TTL_S
    ):
        return last.versions, None
    versions, error = await _read_registry(backends, names)
    if error is None:
        _registry_read[backends] = _RegistryRead(now, names, audit, versions)
    else:
        _registry_read.pop(backends, None)
    return versions, error


async def _read_registry(
    backends: Backends, names: tuple[str, ...]
) -> tuple[dict[str, list[VersionRow]], str | None]:
    """Every served model's versions, read at once. On a failure: the models before the first
    one (in the settings' order) that failed, and its error, as when they were read in turn."""
    async with all_at_once() as group:
        tasks = [group.create_task(settled(partial(_versions, backends, name))) for name in names]
    versions: dict[str, list[VersionRow]] = {}
    for name, task in zip(names, tasks, strict=True):
        found = task.result()
        if isinstance(found, ConsoleError):
            return versions, str(found)
        versions[name] = found
    return versions, None


async def _versions(backends: Backends, name: str) -> list[VersionRow]:
    async with all_at_once() as group:
        model_task = group.create_task(settled(partial(backends.registry.get_model, name)))
        found_task = group.create_task(settled(partial(backends.registry.list_versions, name)))
    model, found = model_task.result(), found_task.result()
    if isinstance(model, ConsoleError):
        raise model
    if model is None:
        return []  # not registered: whatever the version search answered does not matter
    if isinstance(found, ConsoleError):
        raise found
    by_version: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        by_version.setdefault(version, []).append(alias)
    gate, trust = backends.settings.robustness, record_trust(backends.settings)
    rows = [
        VersionRow(
            version=v.version,
            aliases=tuple(sorted(by_version.get(v.version, []))),
            kind=v.tags.get("kind", ""),
            sha256=v.tags.get("onnx_sha256", ""),
            status=v.status,
            robustness=judge_robustness(v.tags, gate, trust, model=model.name, version=v.version),
        )
        for v in found
    ]
    return sorted(rows, key=lambda r: int(r.version) if r.version.isdigit() else 0, reverse=True)
