"""Clients view: the clients that matter first, at fleet scale (see ``client_selection``):
the union of the top-K per model by request rate, extraction score, flagged rate and refused
share, and every client with a firing alert, a block, a budget or hardening, each with why it
is listed; their ten-minute rate heatmap; the policy store's block, budget and hardening of
each; the count of active clients; and, from the gateway's own state, the clients counted as
``other``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from console.adapters.backends import Backends
from console.adapters.gateway_state import GatewayClients, UnlabelledClient
from console.adapters.policy_records import Block, Budget, Hardening
from console.adapters.prometheus import PrometheusClient, QueryResult, RangeResult
from console.errors import ConsoleError
from console.views import client_selection as sel
from console.views import queries as q
from console.views.client_reads import (
    Read,
    Values,
    limited,
    per_model,
    range_limited,
    read_all,
    read_by_ids,
)
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


async def fetch_clients(
    backends: Backends, more: int = 0, search: str = "", also: Iterable[str] = ()
) -> ClientsSnapshot:
    """One refresh. ``more``: pages of K more clients by each criterion; ``search``: also the
    clients of the whole fleet whose id contains it (the ``/`` filter); ``also``: these exact
    ids too, wherever they rank (``get clients --client``)."""
    prom = backends.prometheus
    end = time.time()
    start = end - q.HEATMAP_WINDOW_S
    search_regex = sel.search_regex(search)
    asked = sorted(set(also))
    async with all_at_once() as group:
        # One evaluation time for all reads, so they describe the same clients.
        listed_task = group.create_task(_listed(prom, more, end))
        active_task = group.create_task(limited(prom, q.CLIENTS_ACTIVE.promql, end))
        over_task = group.create_task(
            limited(prom, sel.OVER_THRESHOLD_RECORDED, end, secondary=True)
        )
        heat_task = group.create_task(
            range_limited(prom, q.CLIENT_HEATMAP.promql, start, end, q.HEATMAP_STEP_S)
        )
        watch_task = group.create_task(watch_list(backends))
        search_task = group.create_task(_search(prom, search_regex, end))
        unlabelled_task = group.create_task(
            settled(lambda: backends.gateway_state.unlabelled(UNLABELLED_LISTED))
        )
    values, reasons = listed_task.result()
    watch = watch_task.result()
    shown_watched, watch_note = _watched_shown(watch)
    values.truncated += watch_note
    listed_clients = {client for _, client in reasons}
    unread = [c for c in dict.fromkeys([*asked, *shown_watched]) if c not in listed_clients]
    values.add(await read_by_ids(prom, unread, end, "watched clients"))
    found = search_task.result()
    values.add(found)
    active_result, over_result = active_task.result(), over_task.result()
    heat, heat_note = heat_task.result()
    values.truncated += heat_note
    recorded = isinstance(active_result, ConsoleError) or active_result.samples
    if reasons and not recorded:  # clients, but no bounded recordings: older rules
        values.warnings.append(sel.NOT_RECORDED)
        active_result, over_result, heat = await _computed_counts(prom, start, end)
    rows = _rows(values.values, reasons, watch, _keys(found.values), set(shown_watched), asked)
    active = None
    if isinstance(active_result, ConsoleError):
        values.truncated.append("active clients: over the engine's series limit")
    else:
        active = round(sum(per_model(active_result).values()))
        values.warnings += active_result.warnings
    values.truncated += _over_threshold_cut(per_model(over_result), rows)
    unlabelled = unlabelled_task.result()
    return ClientsSnapshot(
        rows,
        _heatmap(heat, end),
        [*values.warnings, *heat.warnings],
        watch.policy_error,
        None if isinstance(unlabelled, ConsoleError) else unlabelled,
        str(unlabelled) if isinstance(unlabelled, ConsoleError) else None,
        active=active,
        more_available=active is None or active > len(reasons),
        truncated=values.truncated,
        alert_error=watch.alert_error,
    )


async def _search(prom: PrometheusClient, regex: str | None, end: float) -> Read:
    """The clients matching ``regex`` that rank highest by any criterion, and how many match:
    when more than were read, the snapshot says so."""
    if regex is None:
        return Read({})
    async with all_at_once() as group:
        found_task = group.create_task(
            read_all(prom, sel.search_queries(regex), end, "search", secondary=True)
        )
        count_task = group.create_task(limited(prom, sel.search_count(regex), end, secondary=True))
    found = found_task.result()
    matches = round(sum(per_model(count_task.result()).values()))
    read = len(_keys(found.values))
    if matches > read:
        found.truncated.append(f"search: {matches} matches, {read} read (narrow it)")
    return found


def _watched_shown(watch: WatchList) -> tuple[list[str], list[str]]:
    """The watched clients the view lists, at most ``WATCHED_LIMIT``: the policy store's
    first (an operator's decision), then those alerts name; and a note of the rest."""
    ordered = list(
        dict.fromkeys(
            [*sorted(watch.blocks), *sorted(watch.budgets), *sorted(watch.hardenings)]
            + sorted(watch.alerts)
        )
    )
    if len(ordered) <= sel.WATCHED_LIMIT:
        return ordered, []
    left = len(ordered) - sel.WATCHED_LIMIT
    note = f"{left} watched clients beyond {sel.WATCHED_LIMIT} not listed (Alerts lists them)"
    return ordered[: sel.WATCHED_LIMIT], [note]


def _over_threshold_cut(counts: dict[str, float], rows: list[ClientRow]) -> list[str]:
    notes = []
    for model, count in sorted(counts.items()):
        listed = sum(
            1 for r in rows if r.model == model and (r.extraction or 0) > sel.EXTRACTION_ALERT
        )
        if round(count) > listed:
            notes.append(
                f"{model}: {round(count)} clients over the extraction threshold, {listed} "
                "listed (more: the next by score)"
            )
    return notes


async def _listed(
    prom: PrometheusClient, more: int, end: float
) -> tuple[Read, dict[tuple[str, str], list[str]]]:
    """The listed clients' values and why each is listed, from the bounded recordings; a page
    beyond them ("more"), or all of it without them, from every client series."""
    recorded = await read_all(prom, sel.listed_queries(), end, "listed clients")
    if not (recorded.values.get("rate") or recorded.truncated):
        return await _from_every_series(prom, more, end)
    reasons = sel.top_reasons(recorded.values)
    for key in recorded.values.get("rate", {}):  # a topk tie the engine broke its way
        reasons.setdefault(key, ["listed"])
    if more:
        page, paged = await _from_every_series(prom, more, end, secondary=True)
        for key, why in paged.items():
            reasons[key] = list(dict.fromkeys([*reasons.get(key, []), *why]))
        page.add(recorded)  # the recorded values win where both have one
        recorded = page
    return recorded, reasons


async def _from_every_series(
    prom: PrometheusClient, more: int, end: float, *, secondary: bool = False
) -> tuple[Read, dict[tuple[str, str], list[str]]]:
    """Each criterion's top list over every client series, then the listed clients' other
    values by their ids."""
    tops = await read_all(prom, sel.top_queries(more), end, "top lists", secondary=secondary)
    reasons = sel.top_reasons(tops.values, more)
    others = await read_by_ids(prom, (c for _, c in reasons), end, "listed clients")
    # The regexes name clients, not (model, client): keep the pairs a top list holds.
    for name, by_key in others.values.items():
        kept = {k: v for k, v in by_key.items() if k in reasons}
        tops.values.setdefault(name, {}).update(kept)
    tops.warnings += others.warnings
    tops.truncated += others.truncated
    return tops, reasons


async def _computed_counts(
    prom: PrometheusClient, start: float, end: float
) -> tuple[QueryResult | ConsoleError, QueryResult | ConsoleError, RangeResult]:
    async with all_at_once() as group:
        active_task = group.create_task(limited(prom, sel.ACTIVE_COMPUTED, end))
        over_task = group.create_task(
            limited(prom, sel.over_threshold_computed(), end, secondary=True)
        )
        heat_task = group.create_task(
            range_limited(prom, sel.HEATMAP_COMPUTED, start, end, q.HEATMAP_STEP_S)
        )
    return active_task.result(), over_task.result(), heat_task.result()[0]


def _keys(values: Values) -> set[tuple[str, str]]:
    return {k for by_key in values.values() for k in by_key}


def _rows(
    values: Values,
    reasons: dict[tuple[str, str], list[str]],
    watched: WatchList,
    found_keys: set[tuple[str, str]],
    shown_watched: set[str],
    asked: list[str],
) -> list[ClientRow]:
    wanted = shown_watched | set(asked)
    keys: set[tuple[str, str]] = set(reasons) | found_keys
    keys.update(k for k in _keys(values) if k[1] in wanted)
    seen_clients = {client for _, client in keys}
    for client in wanted - seen_clients:  # watched or asked, but no series in the engine
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
        if client in asked and not why:
            why.append("asked")
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
