"""The Clients view's reads from the query engine, each bounded and each failing softly.

The listed clients' reads are the view: if the engine cannot answer them, the view fails. Every
other read (watched clients by id, the search, the "more" page, the counts) is secondary: an
engine that refuses it (its series limit, a query too long for it, a bad request) costs that
read only, and the snapshot's ``truncated`` says what is missing, beside the rows the others
gave. Credentials refused and an engine that is down fail the view either way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from console.adapters.prometheus import PrometheusClient, QueryResult, RangeResult, Sample
from console.errors import (
    BackendAuthError,
    BackendResponseError,
    ConsoleError,
    SeriesLimitError,
)
from console.views import client_selection as sel
from console.views.together import all_at_once

Values = dict[str, dict[tuple[str, str], float]]
"""criterion -> (model, client) -> value."""


@dataclass
class Read:
    values: Values
    warnings: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)

    def add(self, other: Read) -> None:
        for name, by_key in other.values.items():
            self.values.setdefault(name, {}).update(by_key)
        self.warnings += other.warnings
        self.truncated += other.truncated


def by_key(samples: list[Sample]) -> dict[tuple[str, str], float]:
    """(model, client) -> value; a NaN or infinite value (0/0 of an idle client's ratio) is no
    value."""
    return {
        (s.metric.get("model", ""), s.metric.get("client", "")): s.value
        for s in samples
        if math.isfinite(s.value)
    }


def _short(exc: ConsoleError) -> str:
    text = str(exc)
    return text if len(text) <= 120 else text[:60] + " … " + text[-57:]


async def limited(
    prom: PrometheusClient, expr: str, end: float, *, secondary: bool = False
) -> QueryResult | ConsoleError:
    """A query, or the engine's refusal over its series limit (any read), or its refusal of a
    secondary read for another reason; other failures fail the view."""
    try:
        return await prom.query(expr, end)
    except SeriesLimitError as exc:
        return exc
    except BackendAuthError:
        raise
    except BackendResponseError as exc:
        if secondary:
            return exc
        raise


async def range_limited(
    prom: PrometheusClient, expr: str, start: float, end: float, step: float
) -> tuple[RangeResult, list[str]]:
    """A range read whose refusal over the series limit is an empty answer and a note."""
    try:
        return await prom.query_range(expr, start, end, step), []
    except SeriesLimitError:
        return RangeResult(series=[]), ["heatmap: over the engine's series limit"]


async def read_all(
    prom: PrometheusClient,
    queries: dict[str, str],
    end: float,
    what: str,
    *,
    secondary: bool = False,
) -> Read:
    async with all_at_once() as group:
        tasks = {
            n: group.create_task(limited(prom, e, end, secondary=secondary))
            for n, e in queries.items()
        }
    read = Read({})
    over_limit: list[str] = []
    for name, task in tasks.items():
        result = task.result()
        if isinstance(result, SeriesLimitError):
            over_limit.append(name)
        elif isinstance(result, ConsoleError):
            note = f"{what}: not read ({_short(result)})"
            if note not in read.truncated:
                read.truncated.append(note)
        else:
            read.values[name] = by_key(result.samples)
            read.warnings += result.warnings
    if over_limit:
        read.truncated.append(f"{what} ({', '.join(over_limit)}): over the engine's series limit")
    return read


async def read_by_ids(
    prom: PrometheusClient, clients: Iterable[str], end: float, what: str
) -> Read:
    """Every criterion's value for ``clients``, by exact id regexes short enough for any engine
    or proxy (``client_regexes``), read at once; malformed ids are named, not read."""
    regexes, malformed = sel.client_regexes(clients)
    read = Read({})
    if malformed:
        read.truncated.append(f"{what}: {len(malformed)} ids are not valid ids, not read")
    if not regexes:
        return read
    async with all_at_once() as group:
        tasks = [
            group.create_task(read_all(prom, sel.by_id_queries(regex), end, what, secondary=True))
            for regex in regexes
        ]
    for task in tasks:
        part = task.result()
        part.truncated = [t for t in part.truncated if t not in read.truncated]
        read.add(part)
    return read


def per_model(result: QueryResult | ConsoleError) -> dict[str, float]:
    if isinstance(result, ConsoleError):
        return {}
    return {s.metric.get("model", ""): s.value for s in result.samples if math.isfinite(s.value)}
