"""``python -m console.lab.traffic_service --settings-json FILE``: the lab's benign clients as a
long-running service (what ``lab up`` starts as ``traffic``).

It runs ``run_benign`` in rounds of ``ROUND_S`` seconds (a new seed, so new per-client rates,
each round; memory stays bounded) until ``traffic.duration_s`` is over, and serves on
``traffic.url`` what the clients saw, as Prometheus metrics:

* ``aml_lab_traffic_requests_total{client, outcome}``: answers by outcome (ok, blocked,
  throttled, other); ``other`` includes no answer at all;
* ``aml_lab_traffic_request_duration_seconds``: round-trip latency as the clients measured it;
* ``aml_lab_traffic_gateway_down_total``: rounds that could not start (gateway not serving).

That is the client side of the gateway's own metrics: a block or a budget that hits benign
clients shows here (drills count it as collateral) even if the gateway's view were wrong.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from console.config import Settings
from console.errors import ConsoleError, LabError
from console.lab import resolved

if TYPE_CHECKING:  # numpy and httpx: imported once the settings are known to be good
    from console.lab.attacks.client import InferResult

log = logging.getLogger("console.lab.traffic")

ROUND_S = 300.0
MIN_ROUND_S = 1.0
RETRY_S = 5.0
"""Wait before a new round when the gateway did not serve."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class TrafficMetrics:
    """The generator's own registry (nothing else of the process is exported)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "aml_lab_traffic_requests",
            "Requests the lab's benign clients sent, by client and outcome.",
            ["client", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "aml_lab_traffic_request_duration_seconds",
            "Round-trip latency of the benign clients' requests.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.gateway_down = Counter(
            "aml_lab_traffic_gateway_down",
            "Rounds of benign traffic that could not start: the gateway did not serve.",
            registry=self.registry,
        )

    def observe(self, client: str, result: InferResult) -> None:
        self.requests.labels(client=client, outcome=result.outcome).inc()
        if result.status:
            self.latency.observe(result.latency_s)


async def run_rounds(settings: Settings, metrics: TrafficMetrics) -> int:
    """Benign traffic until ``traffic.duration_s`` is over; the number of rounds run."""
    from console.lab.traffic import run_benign

    cfg = settings.traffic
    deadline = time.monotonic() + cfg.duration_s
    rounds = 0
    while (remaining := deadline - time.monotonic()) > 0:
        if rounds and remaining < MIN_ROUND_S:
            break  # a round ends a moment before its deadline: no sliver of a round after it
        try:
            report = await run_benign(
                settings,
                cfg.clients,
                cfg.rate,
                min(ROUND_S, remaining),
                cfg.seed + rounds,
                model=cfg.model,
                observe=metrics.observe,
            )
        except LabError as exc:
            metrics.gateway_down.inc()
            log.warning("no benign traffic this round: %s; retrying in %g s", exc, RETRY_S)
            await asyncio.sleep(min(RETRY_S, max(remaining, 0.0)))
            continue
        rounds += 1
        answers = report.total["outcomes"]
        log.info(
            "round %d: %d requests: %d ok, %d blocked, %d throttled, %d other",
            rounds,
            report.total["requests"],
            *(answers[k] for k in ("ok", "blocked", "throttled", "other")),
        )
    log.info("benign traffic done after %g s (traffic.duration_s)", cfg.duration_s)
    return rounds


def main(argv: list[str] | None = None) -> int:
    try:
        settings = resolved.service_settings("python -m console.lab.traffic_service", __doc__, argv)
        from console.lab.attacks.common import digits_split, require_loopback_target
        from console.lab.specs import require_loopback, service_port

        require_loopback("traffic", settings.traffic.url)
        require_loopback_target(settings.gateway.url)
        port = service_port("traffic", settings.traffic.url)
        digits_split()  # the sklearn import takes seconds: before the service says it is ready
    except ConsoleError as exc:
        log.error("%s", exc)
        return 2
    from prometheus_client import disable_created_metrics, start_http_server

    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
    metrics = TrafficMetrics()
    host = urlsplit(settings.traffic.url).hostname or "127.0.0.1"
    start_http_server(
        port, addr="127.0.0.1" if host == "localhost" else host, registry=metrics.registry
    )
    log.info(
        "benign traffic: %d clients at %g req/s each on average against %s; metrics on %s",
        settings.traffic.clients,
        settings.traffic.rate,
        settings.gateway.url,
        settings.traffic.url,
    )
    try:
        asyncio.run(run_rounds(settings, metrics))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
