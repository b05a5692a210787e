"""Flood (resource exhaustion): many concurrent requests of valid inputs as one client, bounded
in concurrency, total and time. By default it ignores ``Retry-After``, as an abusive client
would; the gateway's budget (429) and block (403) are what stop it from being served."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from console.config import Settings
from console.errors import LabError
from console.lab.attacks.client import V2Client
from console.lab.attacks.common import (
    Bounds,
    Clock,
    RunInfo,
    digits_split,
    require_loopback_target,
    run_info,
)


@dataclass
class FloodReport:
    run: RunInfo
    client: str
    model: str
    concurrency: int
    rows_per_request: int
    requests: int
    achieved_rate: float
    """Answered requests per second over the run."""
    outcomes: dict[str, Any]
    latency: dict[str, float | None]
    respected_retry_after: bool

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "run": self.run.as_dict()}


async def run_flood(
    settings: Settings,
    client: str = "mallory-3",
    *,
    model: str | None = None,
    concurrency: int = 32,
    budget: int = 2000,
    duration: float = 30.0,
    seed: int = 0,
    rows: int = 1,
    respect_retry_after: bool = False,
) -> FloodReport:
    """Up to ``budget`` requests from ``concurrency`` workers, for at most ``duration`` s."""
    bounds = Bounds(budget, duration)
    if not 1 <= concurrency <= 256:
        raise LabError("concurrency: between 1 and 256")
    if not 1 <= rows <= 1024:
        raise LabError("rows: between 1 and 1024 per request")
    require_loopback_target(settings.gateway.url)
    pool = digits_split().x_test  # loaded before the clock starts: the import takes seconds
    clock = Clock(bounds.duration_s)
    model_name = model or settings.models.served[0]
    rng = np.random.default_rng(seed)
    async with V2Client(
        settings.gateway.url,
        model_name,
        clock,
        respect_retry_after=respect_retry_after,
        max_connections=concurrency,
    ) as v2:
        await v2.check_ready()
        picks = rng.integers(len(pool), size=(bounds.max_requests, rows))
        next_request = 0

        async def worker() -> None:
            nonlocal next_request
            while next_request < bounds.max_requests and not clock.expired():
                i = next_request
                next_request += 1
                await v2.infer(client, pool[picks[i]])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        stopped = "max_requests" if next_request >= bounds.max_requests else "duration"
        info = run_info(clock, stopped, seed)
        stats = v2.stats.get(client)
    answered = 0 if stats is None else stats.outcomes.total - stats.outcomes.other
    return FloodReport(
        run=info,
        client=client,
        model=model_name,
        concurrency=concurrency,
        rows_per_request=rows,
        requests=stats.requests if stats else 0,
        achieved_rate=round(answered / info.duration_s, 2) if info.duration_s else 0.0,
        outcomes=stats.outcomes.as_dict() if stats else {},
        latency=stats.as_dict()["latency"] if stats else {},
        respected_retry_after=respect_retry_after,
    )


__all__ = ["FloodReport", "run_flood"]
