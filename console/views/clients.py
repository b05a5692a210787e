"""Clients view: request rate per model and client (top-K in PromQL), a rate heatmap over the
last minutes, extraction score, flag rate, refused share, the policy store's block and budget
of each client, and, from the gateway's own state, the clients counted as ``other``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from console.adapters.backends import Backends
from console.adapters.gateway_state import GatewayClients, UnlabelledClient
from console.adapters.policy import Block, Budget
from console.adapters.prometheus import Sample
from console.errors import ConsoleError
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
    )


def _by_key(samples: list[Sample]) -> dict[tuple[str, str], float]:
    return {(s.metric.get("model", ""), s.metric.get("client", "")): s.value for s in samples}


async def fetch_clients(backends: Backends) -> ClientsSnapshot:
    prom = backends.prometheus
    end = time.time()
    start = end - q.HEATMAP_WINDOW_S
    instant = q.CLIENT_INSTANT
    async with all_at_once() as group:
        # One evaluation time for all: the per-client panels select the same top-K clients.
        queries = [group.create_task(prom.query(pq.promql, end)) for pq in instant]
        heat_task = group.create_task(
            prom.query_range(q.CLIENT_HEATMAP.promql, start, end, q.HEATMAP_STEP_S)
        )
        policies_task = group.create_task(_policies(backends))
        unlabelled_task = group.create_task(
            settled(lambda: backends.gateway_state.unlabelled(UNLABELLED_LISTED))
        )
    rate, extraction, flagged, refused = (t.result() for t in queries)
    heat = heat_task.result()
    blocks, budgets, policy_error = policies_task.result()
    ext, flag, ref = _by_key(extraction.samples), _by_key(flagged.samples), _by_key(refused.samples)
    rows = [
        ClientRow(
            model=s.metric.get("model", ""),
            client=s.metric.get("client", ""),
            rate=s.value,
            extraction=ext.get(key),
            flagged_rate=flag.get(key),
            refused_ratio=ref.get(key),
            block=blocks.get(key[1]),
            budget=budgets.get(key[1]),
        )
        for s in rate.samples
        for key in [(s.metric.get("model", ""), s.metric.get("client", ""))]
    ]
    rows.sort(key=lambda r: (-r.rate, r.model, r.client))
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
    warnings = [
        *rate.warnings,
        *extraction.warnings,
        *flagged.warnings,
        *refused.warnings,
        *heat.warnings,
    ]
    unlabelled = unlabelled_task.result()
    return ClientsSnapshot(
        rows,
        Heatmap(heat_rows, times, values),
        warnings,
        policy_error,
        None if isinstance(unlabelled, ConsoleError) else unlabelled,
        str(unlabelled) if isinstance(unlabelled, ConsoleError) else None,
    )


async def _policies(
    backends: Backends,
) -> tuple[dict[str, Block], dict[str, Budget], str | None]:
    """Blocks and budgets read at once; a failure is reported as the first read that failed
    (blocks, then budgets), with what was read before it, as when they were read in turn."""
    async with all_at_once() as group:
        blocks_task = group.create_task(settled(backends.policy.list_blocks))
        budgets_task = group.create_task(settled(backends.policy.list_budgets))
    found_blocks, found_budgets = blocks_task.result(), budgets_task.result()
    if isinstance(found_blocks, ConsoleError):
        return {}, {}, str(found_blocks)
    blocks = {b.client: b for b in found_blocks}
    if isinstance(found_budgets, ConsoleError):
        return blocks, {}, str(found_budgets)
    return blocks, {b.client: b for b in found_budgets}, None


def _nearest(points: dict[float, float], t: float, step: float) -> float:
    best = min(points, key=lambda p: abs(p - t), default=None)
    if best is None or abs(best - t) > step:
        return 0.0
    return points[best]
