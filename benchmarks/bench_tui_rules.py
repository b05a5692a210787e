"""The project's rules as the benchmark's engine runs them: which series they record (read
from ``configs/prometheus/*.yml``), whether they exist yet, and what the ruler (Prometheus, or
vmalert) says of each group: when it last ran, how long that took, and its rules' errors."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from bench_tui_reads import reason

from console.adapters.backends import MetricsEngine
from console.adapters.prometheus import PrometheusClient
from console.config import Settings
from console.errors import ConsoleError

RULES = Path(__file__).resolve().parents[1] / "configs" / "prometheus"
BOUNDED_GROUP = "aml-clients-bounded"
"""The group of bounded per-client reads (top lists, the listed clients' values, the active
count) the Clients view reads at 100,000 clients: every series it records must exist."""
EVERY_CLIENT = "count(max by (model, client) (aml_client_extraction_score))"
Check = Callable[[float | None], bool]


def recorded_by_group() -> dict[str, list[str]]:
    """The series each group of the project's rule files records, by group name."""
    groups: dict[str, list[str]] = {}
    for path in sorted(RULES.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups") or []:
            names = [r["record"] for r in group.get("rules") or [] if "record" in r]
            groups.setdefault(str(group["name"]), []).extend(names)
    return groups


def readiness(view_queries: list[str], n: int) -> dict[str, Check]:
    """What must hold before timing the Clients view at ``n`` clients: every client scraped,
    counted active by the rules, and every series the bounded group records and every recorded
    series the view's queries read present."""
    groups = recorded_by_group()
    recorded = {name for names in groups.values() for name in names}
    active = (
        "sum(aml:clients_active:count)"
        if "aml:clients_active:count" in recorded
        else "count(aml:client_requests:rate1m)"
    )
    checks: dict[str, Check] = {EVERY_CLIENT: lambda v: v == n, active: lambda v: v == n}
    read = {m for expr in view_queries for m in re.findall(r"aml:[A-Za-z0-9_:]+", expr)}
    for name in [*groups.get(BOUNDED_GROUP, []), *sorted(read & recorded)]:
        checks.setdefault(f"count({name})", lambda v: bool(v))
    return checks


async def wait_until_ready(
    prom: PrometheusClient, checks: dict[str, Check], timeout_s: float
) -> tuple[float, dict[str, float | str | None]]:
    """Seconds until every check holds (or the timeout), and the last value of those that
    did not."""
    start = time.monotonic()
    missing: dict[str, float | str | None] = {}
    while time.monotonic() - start < timeout_s:
        missing = {}
        for expr, ok in checks.items():
            value: float | str | None
            try:
                result = await prom.query(expr)
                value = result.samples[0].value if result.samples else None
            except ConsoleError as exc:  # a busy engine times out; a limit says so
                value = f"failed: {reason(exc)}"
            if isinstance(value, str) or not ok(value):
                missing[expr] = value
        if not missing:
            break
        await asyncio.sleep(1)
    return time.monotonic() - start, missing


def _epoch(text: object) -> float:
    """An RFC 3339 time (nanoseconds, ``Z``) as seconds; 0 for none or Go's zero time."""
    if not isinstance(text, str) or not text:
        return 0.0
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    try:
        return max(0.0, datetime.fromisoformat(text).timestamp())
    except ValueError:
        return 0.0


@dataclasses.dataclass(frozen=True)
class GroupState:
    last: float
    """When it last ran (Unix seconds), 0 if not yet."""
    seconds: float | None
    """How long that took: the group's ``evaluationTime``; vmalert gives none (its rules'
    times overlap and add up to more than the group's: see ``Evaluations``)."""
    interval: float
    slowest_rule: str
    slowest_rule_seconds: float
    errors: dict[str, str]


def ruler_url(settings: Settings, engine: MetricsEngine) -> str:
    if engine == "prometheus":
        return str(settings.prometheus.url)
    return str(settings.victoria_metrics.vmalert_url)


async def rule_groups(settings: Settings, engine: MetricsEngine) -> dict[str, GroupState] | str:
    """Every rule group as the ruler's ``/api/v1/rules`` says, or why it did not answer."""
    url = ruler_url(settings, engine).rstrip("/") + "/api/v1/rules"
    try:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            groups = (await http.get(url)).json()["data"]["groups"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return f"{url}: {exc!r}"
    states = {}
    for group in groups:
        rules = group.get("rules") or []
        times = {str(r.get("name")): float(r.get("evaluationTime") or 0) for r in rules}
        slowest = max(times, key=lambda name: times[name], default="")
        errors = {}
        for rule in rules:
            error = str(rule.get("lastError") or "")
            if error and "failed to send alerts" not in error:  # there is no Alertmanager
                errors[str(rule.get("name"))] = error[-400:]
        last = _epoch(group.get("lastEvaluation"))
        took = group.get("evaluationTime")
        states[str(group["name"])] = GroupState(
            last=last or max((_epoch(r.get("lastEvaluation")) for r in rules), default=0.0),
            seconds=float(took) if took is not None else None,
            interval=float(group.get("interval") or 0),
            slowest_rule=slowest,
            slowest_rule_seconds=times.get(slowest, 0.0),
            errors=errors,
        )
    return states


VMALERT_ITERATION = re.compile(
    r'^vmalert_iteration_duration_seconds_(sum|count)\{[^}]*group="([^"]+)"[^}]*\} (\S+)$', re.M
)


async def vmalert_iterations(settings: Settings) -> dict[str, tuple[float, float]]:
    """Each group's total seconds and count of iterations so far, from vmalert's ``/metrics``
    (``vmalert_iteration_duration_seconds``); empty if it does not answer."""
    url = str(settings.victoria_metrics.vmalert_url).rstrip("/") + "/metrics"
    try:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            text = (await http.get(url)).text
    except httpx.HTTPError:
        return {}
    totals: dict[str, dict[str, float]] = {}
    for kind, group, value in VMALERT_ITERATION.findall(text):
        totals.setdefault(group, {})[kind] = totals.get(group, {}).get(kind, 0.0) + float(value)
    return {g: (t.get("sum", 0.0), t.get("count", 0.0)) for g, t in totals.items()}


class Evaluations:
    """Each group's evaluations seen by polling its ruler, with how long each took: one per
    new ``lastEvaluation`` of Prometheus' ``/api/v1/rules``; from vmalert's iteration totals
    (``/metrics``), the growth of their sum over the growth of their count between two polls
    (one iteration at a time when polled more often than the interval)."""

    def __init__(self, settings: Settings, engine: MetricsEngine) -> None:
        self.settings, self.engine = settings, engine
        self.durations: dict[str, dict[float, tuple[float, GroupState]]] = {}
        """Per group: when (Unix seconds) to how long (seconds) and the ruler's state then."""
        self.totals: dict[str, tuple[float, float]] = {}
        self.failure: str | None = None

    async def poll(self) -> dict[str, GroupState]:
        states = await rule_groups(self.settings, self.engine)
        if isinstance(states, str):
            self.failure = states
            return {}
        for name, state in states.items():
            if state.last and state.seconds is not None:
                self._add(name, state.last, state.seconds, state)
        if self.engine == "victoria-metrics":
            now = time.time()
            for name, (total, count) in (await vmalert_iterations(self.settings)).items():
                before_total, before_count = self.totals.get(name, (total, count))
                self.totals[name] = (total, count)
                runs = round(count - before_count)
                for i in range(runs if name in states else 0):  # each the mean of the runs
                    each = (total - before_total) / runs
                    self._add(name, now + i * 1e-6, each, states[name])
        return states

    def _add(self, group: str, when: float, seconds: float, state: GroupState) -> None:
        self.durations.setdefault(group, {})[when] = (seconds, state)

    async def sleep(self, seconds: float, every_s: float = 2.0) -> None:
        """``seconds`` of waiting, polling meanwhile."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            await self.poll()
            await asyncio.sleep(min(every_s, max(left, 0)))

    async def wait_all_after(self, since: float, timeout_s: float) -> tuple[float, list[str]]:
        """Seconds until every group has run since ``since`` (Unix time), and those that did
        not within ``timeout_s``."""
        start = time.monotonic()
        late: list[str] = []
        while time.monotonic() - start < timeout_s:
            states = await self.poll()
            late = sorted(name for name, state in states.items() if state.last < since)
            if states and not late:
                break
            await asyncio.sleep(1)
        return round(time.monotonic() - start, 1), late

    def report(self, since: float = 0.0) -> dict[str, Any]:
        """Per group, of the evaluations seen from ``since``: their median and slowest
        duration, the slowest as a share of the group's interval (over 1: it misses
        iterations), and the ruler's slowest rule at the slowest evaluation seen."""
        out: dict[str, Any] = {}
        for name, runs in sorted(self.durations.items()):
            seen = [run for when, run in runs.items() if when >= since]
            if not seen:
                continue
            worst, state = max(seen, key=lambda run: run[0])
            out[name] = {
                "evaluations": len(seen),
                "median_s": round(statistics.median(took for took, _ in seen), 4),
                "max_s": round(worst, 4),
                "max_share_of_interval": round(worst / state.interval, 3)
                if state.interval
                else None,
                "slowest_rule": state.slowest_rule,
                "slowest_rule_s": round(state.slowest_rule_seconds, 4),
            }
        if self.failure and not out:
            out["(ruler)"] = self.failure
        return out


async def rule_errors(settings: Settings, engine: MetricsEngine) -> dict[str, str]:
    """The last error of every rule that has one, as the ruler says; not the notifier's (the
    benchmark's engine has no Alertmanager)."""
    states = await rule_groups(settings, engine)
    if isinstance(states, str):
        return {"(ruler)": states}
    return {rule: error for state in states.values() for rule, error in state.errors.items()}
