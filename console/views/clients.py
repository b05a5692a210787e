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
from console.errors import ConsoleError
from console.views import client_selection as sel
from console.views import queries as q
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


@dataclass(frozen=True)
class _Watched:
    blocks: dict[str, Block]
    budgets: dict[str, Budget]
    hardenings: dict[str, Hardening]
    alerts: dict[str, list[tuple[str, str]]]
    """client -> (alertname, model) of its firing alerts."""
    values: dict[str, dict[tuple[str, str], float]]
    policy_error: str | None
    alert_error: str | None
    truncated: list[str]
    warnings: list[str]


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


async def _read_all(
    prom: PrometheusClient, queries: dict[str, str], end: float
) -> tuple[dict[str, dict[tuple[str, str], float]], list[str]]:
    async with all_at_once() as group:
        tasks = {name: group.create_task(prom.query(expr, end)) for name, expr in queries.items()}
    results: dict[str, QueryResult] = {name: t.result() for name, t in tasks.items()}
    warnings = [w for r in results.values() for w in r.warnings]
    return {name: _by_key(r.samples) for name, r in results.items()}, warnings


async def fetch_clients(backends: Backends, more: int = 0, search: str = "") -> ClientsSnapshot:
    """One refresh. ``more``: pages of K more clients by rate; ``search``: also the clients
    of the whole fleet whose id contains it (the ``/`` filter)."""
    prom = backends.prometheus
    end = time.time()
    start = end - q.HEATMAP_WINDOW_S
    search_regex = sel.search_regex(search)
    async with all_at_once() as group:
        # One evaluation time for all: the per-client reads select the same top-K clients.
        listed_task = group.create_task(_listed(prom, more, end))
        active_task = group.create_task(prom.query(q.CLIENTS_ACTIVE.promql, end))
        heat_task = group.create_task(
            prom.query_range(q.CLIENT_HEATMAP.promql, start, end, q.HEATMAP_STEP_S)
        )
        watched_task = group.create_task(_watched(backends, end))
        search_task = (
            group.create_task(_read_all(prom, sel.search_queries(search_regex), end))
            if search_regex
            else None
        )
        unlabelled_task = group.create_task(
            settled(lambda: backends.gateway_state.unlabelled(UNLABELLED_LISTED))
        )
    listed, reasons, warnings = listed_task.result()
    watched = watched_task.result()
    found, search_warnings = search_task.result() if search_task else ({}, [])
    active_result = active_task.result()
    heat = heat_task.result()
    rows = _rows(listed, reasons, watched, found)
    active = round(sum(s.value for s in active_result.samples)) if active_result.samples else 0
    by_rate = sum(
        1 for r in rows if any(w == "top rate" or w.startswith("rate #") for w in r.reasons)
    )
    warnings = [
        *warnings,
        *watched.warnings,
        *search_warnings,
        *active_result.warnings,
        *heat.warnings,
    ]
    unlabelled = unlabelled_task.result()
    return ClientsSnapshot(
        rows,
        _heatmap(heat, end),
        warnings,
        watched.policy_error,
        None if isinstance(unlabelled, ConsoleError) else unlabelled,
        str(unlabelled) if isinstance(unlabelled, ConsoleError) else None,
        active=active,
        more_available=active > by_rate,
        truncated=watched.truncated,
        alert_error=watched.alert_error,
    )


async def _listed(
    prom: PrometheusClient, more: int, end: float
) -> tuple[dict[str, dict[tuple[str, str], float]], dict[tuple[str, str], list[str]], list[str]]:
    """Each criterion's top-K, then every value of the clients they list (by their ids)."""
    tops, warnings = await _read_all(prom, sel.top_queries(more), end)
    reasons = sel.top_reasons(tops, more)
    regex, _ = sel.client_regex(client for _, client in reasons)
    if not regex:
        return tops, reasons, warnings
    values, more_warnings = await _read_all(prom, sel.by_id_queries(regex), end)
    # The regex names clients, not (model, client): keep the pairs a top list holds.
    kept = {
        name: {k: v for k, v in by_key.items() if k in reasons} for name, by_key in values.items()
    }
    for name, by_key in tops.items():
        kept.setdefault(name, {}).update(by_key)
    return kept, reasons, warnings + more_warnings


def _rows(
    listed: dict[str, dict[tuple[str, str], float]],
    reasons: dict[tuple[str, str], list[str]],
    watched: _Watched,
    found: dict[str, dict[tuple[str, str], float]],
) -> list[ClientRow]:
    values: dict[str, dict[tuple[str, str], float]] = {}
    for source in (listed, watched.values, found):
        for name, by_key in source.items():
            values.setdefault(name, {}).update(by_key)
    keys: set[tuple[str, str]] = set(reasons)
    keys.update(k for by_key in watched.values.values() for k in by_key)
    keys.update(k for by_key in found.values() for k in by_key)
    seen_clients = {client for _, client in keys}
    watched_clients = {*watched.blocks, *watched.budgets, *watched.hardenings, *watched.alerts}
    for client in watched_clients - seen_clients:  # watched, but no series in the engine
        models = {m for _, m in watched.alerts.get(client, []) if m} or {""}
        keys.update((m, client) for m in models)
    found_keys = {k for by_key in found.values() for k in by_key}
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


async def _watched(backends: Backends, end: float) -> _Watched:
    """The clients the console watches (policy store, firing alerts), read at once, then their
    series: by an exact regex of their ids, so only those series are read."""
    async with all_at_once() as group:
        policies_task = group.create_task(_policies(backends))
        alerts_task = group.create_task(settled(backends.alertmanager.alerts))
    blocks, budgets, hardenings, policy_error = policies_task.result()
    found_alerts = alerts_task.result()
    alerts: dict[str, list[tuple[str, str]]] = {}
    alert_error = None
    if isinstance(found_alerts, ConsoleError):
        alert_error = str(found_alerts)
    else:
        for alert in found_alerts:
            client = alert.labels.get("client")
            if client and alert.state in ("", "active"):
                entry = (alert.labels.get("alertname", "?"), alert.labels.get("model", ""))
                alerts.setdefault(client, []).append(entry)
    wanted = sorted({*blocks, *budgets, *hardenings, *alerts})
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
    values: dict[str, dict[tuple[str, str], float]] = {}
    warnings: list[str] = []
    if regex:
        values, warnings = await _read_all(backends.prometheus, sel.by_id_queries(regex), end)
    return _Watched(
        blocks, budgets, hardenings, alerts, values, policy_error, alert_error, truncated, warnings
    )


async def _policies(
    backends: Backends,
) -> tuple[dict[str, Block], dict[str, Budget], dict[str, Hardening], str | None]:
    """Blocks, budgets and hardenings read at once; a failure is reported as the first read
    that failed, with what was read before it."""
    async with all_at_once() as group:
        blocks_task = group.create_task(settled(backends.policy.list_blocks))
        budgets_task = group.create_task(settled(backends.policy.list_budgets))
        hardenings_task = group.create_task(settled(backends.policy.list_hardenings))
    found_blocks, found_budgets = blocks_task.result(), budgets_task.result()
    found_hardenings = hardenings_task.result()
    if isinstance(found_blocks, ConsoleError):
        return {}, {}, {}, str(found_blocks)
    blocks = {b.client: b for b in found_blocks}
    if isinstance(found_budgets, ConsoleError):
        return blocks, {}, {}, str(found_budgets)
    budgets = {b.client: b for b in found_budgets}
    if isinstance(found_hardenings, ConsoleError):
        return blocks, budgets, {}, str(found_hardenings)
    return blocks, budgets, {h.client: h for h in found_hardenings}, None


def _nearest(points: dict[float, float], t: float, step: float) -> float:
    best = min(points, key=lambda p: abs(p - t), default=None)
    if best is None or abs(best - t) > step:
        return 0.0
    return points[best]
