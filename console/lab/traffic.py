"""Benign traffic: named clients sending held-out digits with light noise, each at its own
rate (Poisson arrivals around a per-client mean), seeded and bounded.

``aml-console lab traffic`` runs it in the foreground; drills call ``run_benign``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from console.config import Settings
from console.errors import LabError
from console.lab.attacks.client import InferResult, Pacer, V2Client
from console.lab.attacks.common import (
    Bounds,
    Clock,
    Rows,
    RunInfo,
    clip_pixels,
    digits_split,
    require_loopback_target,
    run_info,
)

NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
NOISE_SIGMA = 0.5
"""Pixel noise (0..16 scale). Measured: keeps the gateway's extraction score of a benign client
around 0.05-0.12, and its detector score near clean digits'."""
RATE_SPREAD = 0.5
"""Sigma of the log-normal spread of per-client mean rates around ``rate``."""


def client_names(count: int) -> list[str]:
    if not 1 <= count <= 200:
        raise LabError("benign clients: between 1 and 200")
    return [NAMES[i] if i < len(NAMES) else f"client-{i + 1}" for i in range(count)]


def client_rates(count: int, rate: float, rng: np.random.Generator) -> list[float]:
    """Per-client mean rates: log-normal around ``rate``, rescaled so their mean is ``rate``."""
    factors = rng.lognormal(0.0, RATE_SPREAD, count)
    return [float(rate * f) for f in factors / factors.mean()]


@dataclass
class TrafficReport:
    run: RunInfo
    model: str
    rates: dict[str, float]
    """Mean requests per second each client was given."""
    clients: dict[str, dict[str, Any]]
    """Per client: requests, outcomes, latency percentiles."""
    total: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run.as_dict(),
            "model": self.model,
            "rates": self.rates,
            "clients": self.clients,
            "total": self.total,
        }


async def run_benign(
    settings: Settings,
    clients: int,
    rate: float,
    duration: float,
    seed: int,
    *,
    max_requests: int | None = None,
    model: str | None = None,
    observe: Callable[[str, InferResult], None] | None = None,
) -> TrafficReport:
    """Run ``clients`` benign clients for ``duration`` seconds at ``rate`` requests per second
    each on average; stop early after ``max_requests`` requests in all (default: 3x the
    expected count). ``observe(client, result)`` is called after each answer (the traffic
    service's metrics). Only a loopback ``settings.gateway.url`` is accepted."""
    names = client_names(clients)
    if rate <= 0:
        raise LabError("the rate must be above 0 requests per second")
    budget = max_requests or max(10, int(3 * clients * rate * duration))
    bounds = Bounds(budget, duration)
    require_loopback_target(settings.gateway.url)
    pool = digits_split().x_test  # loaded before the clock starts: the import takes seconds
    clock = Clock(bounds.duration_s)
    model_name = model or settings.models.served[0]
    rng = np.random.default_rng(seed)
    rates = client_rates(len(names), rate, rng)
    async with V2Client(settings.gateway.url, model_name, clock) as v2:
        await v2.check_ready()
        sent = 0
        stopped = "duration"

        async def send(name: str, rows: Rows) -> None:
            result = await v2.infer(name, rows)
            if observe is not None:
                observe(name, result)

        async def one_client(name: str, mean: float, crng: np.random.Generator) -> None:
            nonlocal sent, stopped
            pacer = Pacer(clock, mean, concurrency=2, rng=crng)
            while await pacer.tick():
                if sent >= bounds.max_requests:
                    stopped = "max_requests"
                    pacer.skip()
                    break
                sent += 1
                row = pool[crng.integers(len(pool))]
                noisy = clip_pixels(row + crng.normal(0.0, NOISE_SIGMA, row.shape))
                pacer.launch(send(name, noisy[None, :]))
            await pacer.drain()

        # One generator per client, spawned from the run's: adding a client does not change
        # what the others send.
        children = rng.spawn(len(names))
        await asyncio.gather(
            *(one_client(n, r, g) for n, r, g in zip(names, rates, children, strict=True))
        )
        info = run_info(clock, stopped, seed)
        return TrafficReport(
            run=info,
            model=model_name,
            rates={n: round(r, 3) for n, r in zip(names, rates, strict=True)},
            clients={n: v2.stats[n].as_dict() for n in names if n in v2.stats},
            total=v2.total().as_dict(),
        )


__all__ = ["TrafficReport", "client_names", "run_benign"]
