"""An incident's events from the metrics engine (Prometheus, or VictoriaMetrics with the same
PromQL): the ``ALERTS`` history on its client or model (firing, resolved), the client's first
request counted at the gateway, when its answered requests stopped after a mitigation
(containment), and its request rate for the chart.

Client ids are attacker-controlled: they reach PromQL only as quoted, escaped label values."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from console.errors import ConsoleError
from console.incidents.model import Incident, IncidentEvent

if TYPE_CHECKING:
    from console.adapters.backends import Backends
    from console.adapters.prometheus import PrometheusClient, RangeResult, Series

REQUESTS = "aml_requests_total"
"""The gateway's request counter (by model, client, outcome): configs/prometheus/*.yml."""
MAX_POINTS = 1500
MIN_STEP_S = 2.0


def quoted(value: str) -> str:
    """A PromQL string literal: JSON's escapes are PromQL's (Go's) for \\, " and control
    characters; non-ASCII stays as it is (Go has no surrogate pairs)."""
    return json.dumps(value, ensure_ascii=False)


def step_for(start: datetime, end: datetime) -> float:
    return max(MIN_STEP_S, (end - start).total_seconds() / MAX_POINTS)


@dataclass(frozen=True)
class RatePoint:
    at: datetime
    values: dict[str, float]
    """Requests per second by line name (``sent``, ``answered``, or a drill's clients)."""


@dataclass
class PromHistory:
    events: list[IncidentEvent] = field(default_factory=list)
    series: list[RatePoint] = field(default_factory=list)
    answered: list[tuple[datetime, float]] = field(default_factory=list)
    """The client's answered-request counter (for containment)."""
    problem: str | None = None
    """One line: what could not be read, and why."""


def _selector(incident: Incident, **extra: str) -> str:
    matchers = {**({"client": incident.client} if incident.client else {}), **extra}
    if incident.model:
        matchers["model"] = incident.model
    return "{" + ",".join(f"{k}={quoted(v)}" for k, v in matchers.items()) + "}"


def alerts_query(incident: Incident) -> str:
    firing = 'alertstate="firing"'
    if incident.client:
        query = f"ALERTS{{{firing},client={quoted(incident.client)}}}"
        if incident.model:
            query += f' or ALERTS{{{firing},model={quoted(incident.model)},client=""}}'
        return query
    return f"ALERTS{{{firing},model={quoted(incident.model or '')}}}"


def _when(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def _alert_name(series: Series) -> str:
    labels = series.metric
    keys = ("client", "model", "version", "severity")
    shown = " ".join(f"{k}={labels[k]}" for k in keys if labels.get(k))
    return f"{labels.get('alertname', '?')} {shown}".strip()


def _runs(series: Series, gap: float) -> list[list[float]]:
    runs: list[list[float]] = []
    for t, _ in series.points:
        if runs and t - runs[-1][-1] <= gap:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def selector_of(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f"{k}={quoted(v)}" for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{inner}}}"


async def earliest(prometheus: PrometheusClient, selector: str, at: float, step_s: float) -> float:
    """The time of the first raw sample (value > 0) of ``selector`` in the step before the
    grid point ``at``: the range query's grid would round it up by up to a step. ``at`` when
    the engine cannot say."""
    window = math.ceil(step_s) + 1
    try:
        result = await prometheus.query(f"{selector}[{window}s]", at)
    except ConsoleError:
        return at
    times = [t for s in result.series for t, v in s.points if v > 0 and t <= at]
    return min(times) if times else at


async def alert_events(
    prometheus: PrometheusClient, result: RangeResult, step_s: float, end: datetime
) -> list[IncidentEvent]:
    """Each run of firing points: ``alert-firing`` at its first sample, ``alert-resolved`` a
    step after its last (unless it still fires at the end of the window)."""
    events = []
    gap = step_s * 1.5
    for series in result.series:
        name = _alert_name(series)
        selector = selector_of("ALERTS", series.metric)
        for run in _runs(series, gap):
            first = await earliest(prometheus, selector, run[0], step_s)
            events.append(IncidentEvent(_when(first), "alert-firing", name))
            if run[-1] < end.timestamp() - gap:
                events.append(IncidentEvent(_when(run[-1] + step_s), "alert-resolved", name))
    return events


async def first_request(
    prometheus: PrometheusClient, result: RangeResult, selector: str, start: datetime, step_s: float
) -> IncidentEvent | None:
    points = [(t, v) for s in result.series for t, v in s.points if v > 0]
    if not points:
        return None
    t, value = min(points)
    early = " (already counting when the window opens)" if t <= start.timestamp() + 1 else ""
    at = await earliest(prometheus, selector, t, step_s)
    return IncidentEvent(_when(at), "first-request", f"{value:g} requests at the gateway{early}")


def containment(
    answered: list[tuple[datetime, float]], mitigated: datetime | None
) -> IncidentEvent | None:
    """The first point at or after the first mitigation from which the client's answered
    requests never grew again (with at least one point after it to show it)."""
    if mitigated is None or len(answered) < 2:
        return None
    final = answered[-1][1]
    for index, (at, value) in enumerate(answered[:-1]):
        if at < mitigated:
            continue
        if all(v <= value for _, v in answered[index + 1 :]) and value >= final:
            return IncidentEvent(at, "contained", f"answered requests stopped at {value:g}")
    return None


async def read_history(
    incident: Incident, backends: Backends, start: datetime, end: datetime
) -> PromHistory:
    """Everything the engine could say about the incident; a failure becomes ``problem``."""
    step = step_for(start, end)
    history = PromHistory()
    prometheus = None
    try:
        prometheus = backends.prometheus
    except ConsoleError as exc:
        history.problem = f"alert history and request rate missing: {exc}"
        return history
    queries: dict[str, str] = {"alerts": alerts_query(incident)}
    if incident.client:
        queries["counted"] = f"sum({REQUESTS}{_selector(incident)})"
        queries["answered"] = f"sum({REQUESTS}{_selector(incident, outcome='ok')})"
        queries["sent"] = f"sum(rate({REQUESTS}{_selector(incident)}[1m]))"
        queries["answered_rate"] = f"sum(rate({REQUESTS}{_selector(incident, outcome='ok')}[1m]))"
    results = await asyncio.gather(
        *(prometheus.query_range(q, start, end, timedelta(seconds=step)) for q in queries.values()),
        return_exceptions=True,
    )
    got: dict[str, RangeResult] = {}
    failed: list[str] = []
    reasons: list[str] = []
    for name, result in zip(queries, results, strict=True):
        if isinstance(result, ConsoleError):
            failed.append(name)
            if str(result) not in reasons:
                reasons.append(str(result))
        elif isinstance(result, BaseException):
            raise result
        else:
            got[name] = result
    if failed:
        what = {"alerts": "alert history", "counted": "first request", "answered": "containment"}
        missing = sorted({what.get(n, "request rate") for n in failed})
        history.problem = f"{', '.join(missing)} missing: {reasons[0]}"
    if "alerts" in got:
        history.events.extend(await alert_events(prometheus, got["alerts"], step, end))
    if "counted" in got:
        counter = f"{REQUESTS}{_selector(incident)}"
        first = await first_request(prometheus, got["counted"], counter, start, step)
        if first is not None:
            history.events.append(first)
    if "answered" in got:
        history.answered = [(_when(t), v) for s in got["answered"].series[:1] for t, v in s.points]
    history.series = _rates(got.get("sent"), got.get("answered_rate"))
    return history


def _rates(sent: RangeResult | None, answered: RangeResult | None) -> list[RatePoint]:
    rows: dict[float, dict[str, float]] = {}
    for name, result in (("sent", sent), ("answered", answered)):
        for series in result.series[:1] if result else []:
            for t, v in series.points:
                rows.setdefault(t, {})[name] = v
    return [RatePoint(_when(t), values) for t, values in sorted(rows.items())]


__all__ = [
    "PromHistory",
    "RatePoint",
    "alert_events",
    "alerts_query",
    "containment",
    "first_request",
    "quoted",
    "read_history",
]
