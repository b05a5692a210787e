"""The endpoint's own Prometheus metrics (own registry: nothing of the process leaks in)."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Outcome = Literal["allow", "block", "budget", "error"]
OUTCOMES: tuple[Outcome, ...] = ("allow", "block", "budget", "error")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
MAX_SHADOW_CLIENTS = 100
"""Client labels of ``aml_policy_shadow_refusals_total``. Only clients with a shadow budget are
counted there, which operators choose and are few; any beyond this are ``other``."""
OTHER = "other"


class EndpointMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "aml_policy_decisions",
            "Policy decisions answered, by outcome (error: none could be made: 401, 503).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.decisions.labels(outcome)
        self.latency = Histogram(
            "aml_policy_decision_seconds",
            "Time to answer a decision request.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "aml_policy_redis_errors",
            "Redis calls of the decisions that failed (policy reads, budget counts).",
            registry=self.registry,
        )
        self.store_up = Gauge(
            "aml_policy_store_up",
            "1 if the last call to the policy store succeeded.",
            registry=self.registry,
        )
        self.shadow_refusals = Counter(
            "aml_policy_shadow_refusals",
            "Requests a shadow budget would have refused (it refused none), by client.",
            ["client"],
            registry=self.registry,
        )
        self._shadow_clients: set[str] = set()
        self.store_up.set(1)
        self.up = True

    def shadow_refusal(self, client: str) -> None:
        if client not in self._shadow_clients:
            if len(self._shadow_clients) >= MAX_SHADOW_CLIENTS or client == OTHER:
                self.shadow_refusals.labels(OTHER).inc()
                return
            self._shadow_clients.add(client)
        self.shadow_refusals.labels(client).inc()

    def store_state(self, up: bool) -> None:
        self.up = up
        self.store_up.set(1 if up else 0)
        if not up:
            self.redis_errors.inc()
