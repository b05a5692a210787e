"""What a drill reads from the real systems, once a second: the gateway's own request counters
per client and outcome (its ``/metrics``), the benign clients' view of their answers (the
traffic service's ``/metrics``), the version the gateway serves, Alertmanager's alerts, the
policy store's blocks and the audit log's newest records.

The gateway's counters are read directly rather than through Prometheus: containment is judged
on what the attacker gets answered now, not on what was scraped up to 5 s ago. Detection is
judged through Alertmanager, the path an on-call engineer is paged by.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from console.adapters.alertmanager import Alert
from console.adapters.backends import Backends
from console.audit.records import AuditRecord
from console.errors import BackendResponseError, BackendUnavailable

REFUSED = ("blocked", "throttled")


@dataclass
class Counts:
    """Requests by outcome for one client (cumulative, as the counters are)."""

    by_outcome: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.by_outcome.values())

    @property
    def ok(self) -> float:
        return self.by_outcome.get("ok", 0.0)

    @property
    def refused(self) -> float:
        return sum(self.by_outcome.get(o, 0.0) for o in REFUSED)

    def minus(self, earlier: Counts) -> Counts:
        keys = set(self.by_outcome) | set(earlier.by_outcome)
        return Counts(
            {k: self.by_outcome.get(k, 0.0) - earlier.by_outcome.get(k, 0.0) for k in keys}
        )


@dataclass(frozen=True)
class Observation:
    at: float
    """Seconds since the drill started (its monotonic clock)."""
    gateway: dict[str, Counts]
    """Per client, from ``aml_requests_total`` (every model)."""
    traffic: dict[str, Counts]
    """Per benign client, from ``aml_lab_traffic_requests_total``."""
    served_version: str | None
    alerts: list[Alert]
    blocked_clients: frozenset[str]
    errors: tuple[str, ...] = ()
    """Backends that could not be read this time (the drill goes on without them)."""


async def counters(client: httpx.AsyncClient, url: str, metric: str) -> dict[str, Counts]:
    """Per-client counts by outcome of counter ``metric`` in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        response = await client.get(f"{url.rstrip('/')}/metrics")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise BackendUnavailable(f"{url}/metrics: {exc}", "drill") from None
    out: dict[str, Counts] = defaultdict(Counts)
    try:
        families = list(text_string_to_metric_families(response.text))
    except ValueError as exc:
        raise BackendResponseError(
            f"{url}/metrics: not a metrics exposition: {exc}", "drill"
        ) from None
    for family in families:
        if family.name != metric.removesuffix("_total"):
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            who, outcome = sample.labels.get("client", ""), sample.labels.get("outcome", "")
            counts = out[who].by_outcome
            counts[outcome] = counts.get(outcome, 0.0) + sample.value
    return dict(out)


async def served_version(client: httpx.AsyncClient, gateway_url: str, model: str) -> str | None:
    try:
        response = await client.get(f"{gateway_url.rstrip('/')}/v2/models/{model}")
        if response.status_code != 200:
            return None
        versions = response.json().get("versions") or []
    except (httpx.HTTPError, ValueError):
        return None
    return str(versions[0]) if versions else None


class Observer:
    """Reads every source at once; a source that fails is noted, not fatal."""

    def __init__(self, backends: Backends, model: str) -> None:
        self.backends = backends
        self.model = model
        self.http = httpx.AsyncClient(timeout=2.0, trust_env=False, follow_redirects=False)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def observe(self, at: float) -> Observation:
        settings = self.backends.settings
        results = await asyncio.gather(
            counters(self.http, settings.gateway.url, "aml_requests_total"),
            counters(self.http, settings.traffic.url, "aml_lab_traffic_requests_total"),
            served_version(self.http, settings.gateway.url, self.model),
            self.backends.alertmanager.alerts(),
            self.backends.policy.list_blocks(),
            return_exceptions=True,
        )
        errors = tuple(str(r) for r in results if isinstance(r, Exception))
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, Exception):
                raise r
        gateway, traffic, version, alerts, blocks = results
        return Observation(
            at=at,
            gateway=gateway if isinstance(gateway, dict) else {},
            traffic=traffic if isinstance(traffic, dict) else {},
            served_version=version if isinstance(version, str) else None,
            alerts=alerts if isinstance(alerts, list) else [],
            blocked_clients=frozenset(b.client for b in blocks)
            if isinstance(blocks, list)
            else frozenset(),
            errors=errors,
        )


def audit_since(backends: Backends, since: datetime, limit: int = 2000) -> list[AuditRecord]:
    """Audit records written at or after ``since`` (oldest first)."""
    from console.audit.log import AuditLog

    log = AuditLog.from_settings(backends.settings)
    return [r for r in log.tail(limit) if r.time >= since]
