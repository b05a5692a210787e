"""Models view: latency percentiles, error and flag rates and confidence shift per model from
the query engine, the confidence over time, and each served model's versions and aliases from
the MLflow registry."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

from console.adapters.backends import Backends
from console.adapters.prometheus import QueryResult
from console.errors import ConsoleError
from console.views import queries as q
from console.views.together import all_at_once, settled


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


@dataclass(frozen=True)
class ModelsSnapshot:
    rows: list[ModelRow]
    confidence: dict[str, list[tuple[float, float]]]
    """Mean confidence over time per model."""
    versions: dict[str, list[VersionRow]]
    warnings: list[str] = field(default_factory=list)
    registry_error: str | None = None


def _per_model(result: QueryResult) -> dict[str, float]:
    return {s.metric.get("model", ""): s.value for s in result.samples}


async def fetch_models(backends: Backends) -> ModelsSnapshot:
    prom = backends.prometheus
    end = time.time()
    instant = q.MODEL_INSTANT
    start = end - q.CONFIDENCE_WINDOW_S
    async with all_at_once() as group:
        queries = [group.create_task(prom.query(pq.promql)) for pq in instant]
        confidence_task = group.create_task(
            prom.query_range(q.MODEL_CONFIDENCE.promql, start, end, q.CONFIDENCE_STEP_S)
        )
        registry_task = group.create_task(_registry(backends))
    results = [t.result() for t in queries]
    confidence = confidence_task.result()
    versions, registry_error = registry_task.result()
    columns = [_per_model(r) for r in results]
    names = sorted({m for c in columns for m in c} | set(backends.settings.models.served))
    rows = [ModelRow(name, *(c.get(name) for c in columns)) for name in names]
    warnings = [w for r in results for w in r.warnings] + confidence.warnings
    series = {s.metric.get("model", ""): list(s.points) for s in confidence.series}
    return ModelsSnapshot(rows, series, versions, warnings, registry_error)


async def _registry(backends: Backends) -> tuple[dict[str, list[VersionRow]], str | None]:
    """Every served model's versions, read at once. On a failure: the models before the first
    one (in the settings' order) that failed, and its error, as when they were read in turn."""
    names = backends.settings.models.served
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
    rows = [
        VersionRow(
            version=v.version,
            aliases=tuple(sorted(by_version.get(v.version, []))),
            kind=v.tags.get("kind", ""),
            sha256=v.tags.get("onnx_sha256", ""),
            status=v.status,
        )
        for v in found
    ]
    return sorted(rows, key=lambda r: int(r.version) if r.version.isdigit() else 0, reverse=True)
