"""Clients view: the clients that matter first, at fleet scale (see ``client_selection``):
the union of the top-K per model by request rate, extraction score, flagged rate and refused
share, and every client with a firing alert, a block, a budget or hardening, each with why it
is listed; their ten-minute rate heatmap; the policy store's block, budget and hardening of
each; the count of active clients; and, from the gateway's own state, the clients counted as
``other``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from console.adapters.backends import Backends
from console.adapters.gateway_state import GatewayClients, UnlabelledClient
from console.adapters.policy import Block, Budget, Hardening
from console.adapters.prometheus import PrometheusClient, QueryResult, RangeResult, Sample
from console.errors import ConsoleError, SeriesLimitError
from console.views import client_selection as sel
from console.views import queries as q
from console.views.client_watch import WatchList, watch_list
from console.views.together import all_at_once, settled

UNLABELLED_LISTED = 20


@dataclass(frozen=True)
class ClientRow:
    model: str
    client: str
    rate: float
    extraction: float | None
    flagged_rate: float | None
    refused_ratio: float | None
    block: Block | None
    budget: Budget | None
    hardening: Hardening | None = None
    alerts: tuple[str, ...] = ()
    """Names of the firing alerts that name this client."""
    reasons: tuple[str, ...] = ()
    """Why the row is listed: ``alert``, ``blocked``, ``budget``, ``hardened``, ``top rate``,
    ``top extraction``, ``top flagged``, ``top refused``, ``rate #N`` (paged), ``search``."""

    @property
    def why(self) -> str:
        return ", ".join(self.reasons)


@dataclass(frozen=True)
class Heatmap:
    rows: list[tuple[str, str]]
    """(model, client) of each row."""
    times: list[float]
    values: list[list[float]]
    """values[row][column]: requests per second (0 where the series has no point)."""


@dataclass(frozen=True)
class ClientsSnapshot:
    rows: list[ClientRow]
    heatmap: Heatmap
    warnings: list[str] = field(default_factory=list)
    policy_error: str | None = None
    unlabelled: GatewayClients | None = None
    """Who the gateway counts as ``other`` (no label slot), riskiest first."""
    gateway_error: str | None = None
    active: int | None = None
    """Active (model, client) series in the engine; None when it did not answer."""
    more_available: bool = False
    """More active clients than listed: the view's "more" row pages through them."""
    truncated: list[str] = field(default_factory=list)
    """What was left out of the answer and why (a badge says so; nothing is cut silently)."""
    alert_error: str | None = None


def unlabelled_row(found: UnlabelledClient) -> ClientRow:
    """A client counted as ``other`` as a row of the view: on the model it scores highest on
    (served models are few), its answered rate as its rate; the gateway keeps no flagged rate
    of it and the policy store is not read for it."""
    model = max(found.extraction, key=lambda m: found.extraction[m], default="")
    return ClientRow(
        model,
        found.client,
        found.answered_rate,
        found.extraction.get(model),
        None,
        found.refused_share,
        None,
        None,
        reasons=("counted as other",),
    )


def _by_key(samples: list[Sample]) -> dict[tuple[str, str], float]:
    return {(s.metric.get("model", ""), s.metric.get("client", "")): s.value for s in samples}


Values = dict[str, dict[tuple[str, str], float]]
"""criterion -> (model, client) -> value."""


@dataclass
class _Read:
    values: Values
    warnings: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)

    def add(self, other: _Read) -> None:
        for name, by_key in other.values.items():
            self.values.setdefault(name, {}).update(by_key)
        self.warnings += other.warnings
        self.truncated += other.truncated


async def _limited(prom: PrometheusClient, expr: str, end: float) -> QueryResult | SeriesLimitError:
    """A query, or the engine's refusal over its series limit (then the view lists what the
    other reads gave, and says what is missing); any other failure fails the view."""
    try:
        return await prom.query(expr, end)
    except SeriesLimitError as exc:
        return exc


async def _read_all(
    prom: PrometheusClient, queries: dict[str, str], end: float, what: str
) -> _Read:
    async with all_at_once() as group:
        tasks = {n: group.create_task(_limited(prom, e, end)) for n, e in queries.items()}
    read = _Read({})
    refused = []
    for name, task in tasks.items():
        result = task.result()
        if isinstance(result, SeriesLimitError):
            refused.append(name)
            continue
        read.values[name] = _by_key(result.samples)
        read.warnings += result.warnings
    if refused:
        read.truncated.append(f"{what} ({', '.join(refused)}): over the engine's series limit")
    return read


async def fetch_clients(backends: Backends, more: int = 0, search: str = "") -> ClientsSnapshot:
    """One refresh. ``more``: pages of K more clients by rate; ``search``: also the clients
    of the whole fleet whose id contains it (the ``/`` filter)."""
    prom = backends.prometheus
    end = time.time()
    start = end - q.HEATMAP_WINDOW_S
    search_regex = sel.search_regex(search)
    async with all_at_once() as group:
        # One evaluation time for all reads, so they describe the same clients.
        listed_task = group.create_task(_listed(prom, more, end))
        active_task = group.create_task(_limited(prom, q.CLIENTS_ACTIVE.promql, end))
        heat_task = group.create_task(
            prom.query_range(q.CLIENT_HEATMAP.promql, start, end, q.HEATMAP_STEP_S)
        )
        watch_task = group.create_task(watch_list(backends))
        search_task = (
            group.create_task(_read_all(prom, sel.search_queries(search_regex), end, "search"))
            if search_regex
            else None
        )
        unlabelled_task = group.create_task(
            settled(lambda: backends.gateway_state.unlabelled(UNLABELLED_LISTED))
        )
    values, reasons = listed_task.result()
    watch = watch_task.result()
    listed_clients = {client for _, client in reasons}
    values.add(await _watched_values(prom, watch.clients - listed_clients, end))
    found = search_task.result() if search_task else _Read({})
    values.add(found)
    active_result = active_task.result()
    heat = heat_task.result()
    recorded = isinstance(active_result, SeriesLimitError) or active_result.samples
    if reasons and not recorded:  # clients, but no bounded recordings: older rules
        values.warnings.append(sel.NOT_RECORDED)
        active_result, heat = await _computed_counts(prom, start, end)
    rows = _rows(values.values, reasons, watch, set(_keys(found.values)))
    active = None
    if isinstance(active_result, SeriesLimitError):
        values.truncated.append("active clients: over the engine's series limit")
    else:
        active = round(sum(s.value for s in active_result.samples))
        values.warnings += active_result.warnings
    by_rate = sum(
        1 for r in rows if any(w == "top rate" or w.startswith("rate #") for w in r.reasons)
    )
    unlabelled = unlabelled_task.result()
    return ClientsSnapshot(
        rows,
        _heatmap(heat, end),
        [*values.warnings, *heat.warnings],
        watch.policy_error,
        None if isinstance(unlabelled, ConsoleError) else unlabelled,
        str(unlabelled) if isinstance(unlabelled, ConsoleError) else None,
        active=active,
        more_available=active is None or active > by_rate,
        truncated=values.truncated,
        alert_error=watch.alert_error,
    )


async def _listed(
    prom: PrometheusClient, more: int, end: float
) -> tuple[_Read, dict[tuple[str, str], list[str]]]:
    """The listed clients' values and why each is listed, from the bounded recordings; a page
    beyond them ("more"), or all of it without them, from every client series."""
    recorded = await _read_all(prom, sel.listed_queries(), end, "listed clients")
    if not (recorded.values.get("rate") or recorded.truncated):
        return await _from_every_series(prom, more, end, [c.name for c in sel.CRITERIA])
    reasons = sel.top_reasons(recorded.values)
    for key in recorded.values.get("rate", {}):  # a topk tie the engine broke its way
        reasons.setdefault(key, ["listed"])
    if more:
        page, paged = await _from_every_series(prom, more, end, ["rate"])
        for key, why in paged.items():
            reasons[key] = list(dict.fromkeys([*reasons.get(key, []), *why]))
        page.add(recorded)  # the recorded values win where both have one
        recorded = page
    return recorded, reasons


async def _from_every_series(
    prom: PrometheusClient, more: int, end: float, criteria: list[str]
) -> tuple[_Read, dict[tuple[str, str], list[str]]]:
    """Each criterion's top list over every client series, then the listed clients' other
    values by their ids."""
    queries = {n: e for n, e in sel.top_queries(more).items() if n in criteria}
    tops = await _read_all(prom, queries, end, "top lists")
    reasons = sel.top_reasons(tops.values, more)
    regex, _ = sel.client_regex(client for _, client in reasons)
    if regex:
        others = await _read_all(prom, sel.by_id_queries(regex), end, "listed clients")
        # The regex names clients, not (model, client): keep the pairs a top list holds.
        for name, by_key in others.values.items():
            kept = {k: v for k, v in by_key.items() if k in reasons}
            tops.values.setdefault(name, {}).update(kept)
        tops.warnings += others.warnings
        tops.truncated += others.truncated
    return tops, reasons


async def _watched_values(prom: PrometheusClient, clients: set[str], end: float) -> _Read:
    """The values of watched clients no top list holds, by an exact regex of their ids, so
    only their series are read (at most ``WATCHED_LIMIT``; the rest is said to be left out)."""
    wanted = sorted(clients)
    truncated: list[str] = []
    if len(wanted) > sel.WATCHED_LIMIT:
        truncated.append(
            f"{len(wanted) - sel.WATCHED_LIMIT} watched clients beyond {sel.WATCHED_LIMIT} "
            "not read from the engine"
        )
        wanted = wanted[: sel.WATCHED_LIMIT]
    regex, malformed = sel.client_regex(wanted)
    if malformed:
        truncated.append(f"{len(malformed)} watched client ids are not valid ids, not read")
    read = _Read({}, truncated=truncated)
    if regex:
        read.add(await _read_all(prom, sel.by_id_queries(regex), end, "watched clients"))
    return read


async def _computed_counts(
    prom: PrometheusClient, start: float, end: float
) -> tuple[QueryResult | SeriesLimitError, RangeResult]:
    async with all_at_once() as group:
        active_task = group.create_task(_limited(prom, sel.ACTIVE_COMPUTED, end))
        heat_task = group.create_task(
            prom.query_range(sel.HEATMAP_COMPUTED, start, end, q.HEATMAP_STEP_S)
        )
    return active_task.result(), heat_task.result()


def _keys(values: Values) -> set[tuple[str, str]]:
    return {k for by_key in values.values() for k in by_key}


def _rows(
    values: Values,
    reasons: dict[tuple[str, str], list[str]],
    watched: WatchList,
    found_keys: set[tuple[str, str]],
) -> list[ClientRow]:
    keys: set[tuple[str, str]] = set(reasons) | found_keys
    keys.update(k for k in _keys(values) if k[1] in watched.clients)
    seen_clients = {client for _, client in keys}
    for client in watched.clients - seen_clients:  # watched, but no series in the engine
        models = {m for _, m in watched.alerts.get(client, []) if m} or {""}
        keys.update((m, client) for m in models)
    rows = []
    for model, client in keys:
        key = (model, client)
        alerts = [name for name, m in watched.alerts.get(client, []) if m in ("", model)]
        why = [f"alert {name}" for name in dict.fromkeys(alerts)]
        if client in watched.blocks:
            why.append("blocked")
        if client in watched.budgets:
            why.append("budget")
        if client in watched.hardenings:
            why.append("hardened")
        why += reasons.get(key, [])
        if key in found_keys and not why:
            why.append("search")
        rows.append(
            ClientRow(
                model=model,
                client=client,
                rate=values.get("rate", {}).get(key, 0.0),
                extraction=values.get("extraction", {}).get(key),
                flagged_rate=values.get("flagged", {}).get(key),
                refused_ratio=values.get("refused", {}).get(key),
                block=watched.blocks.get(client),
                budget=watched.budgets.get(client),
                hardening=watched.hardenings.get(client),
                alerts=tuple(dict.fromkeys(alerts)),
                reasons=tuple(why) or ("listed",),
            )
        )
    rows.sort(
        key=lambda r: (
            *sel.suspicion_order(
                len(r.alerts), r.extraction, r.flagged_rate, r.refused_ratio, r.rate
            ),
            r.model,
            r.client,
        )
    )
    return rows


def _heatmap(heat: RangeResult, end: float) -> Heatmap:
    times = [
        end - q.HEATMAP_WINDOW_S + i * q.HEATMAP_STEP_S
        for i in range(q.HEATMAP_WINDOW_S // q.HEATMAP_STEP_S + 1)
    ]
    heat_rows: list[tuple[str, str]] = []
    values: list[list[float]] = []
    for series in sorted(heat.series, key=lambda s: -max((v for _, v in s.points), default=0)):
        points = dict(series.points)
        heat_rows.append((series.metric.get("model", ""), series.metric.get("client", "")))
        values.append([_nearest(points, t, q.HEATMAP_STEP_S) for t in times])
    return Heatmap(heat_rows, times, values)


def _nearest(points: dict[float, float], t: float, step: float) -> float:
    best = min(points, key=lambda p: abs(p - t), default=None)
    if best is None or abs(best - t) > step:
        return 0.0
    return points[best]
