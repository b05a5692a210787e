"""Prometheus metrics of the contract (docs/architecture.md, "Lab gateway") and OTLP spans.

The ``client`` label is bounded: at most ``capacity`` clients have their own series, and the
slots go by risk (``client_slots``): a quiet client gives its slot up to a suspicious one, the
rest are counted as ``other``, and the riskiest of those is exported on its own.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from console.lab.gateway.client_slots import ClientSlots
from console.lab.gateway.sinks import JsonlSink

if TYPE_CHECKING:
    from console.lab.gateway.otlp_export import OtlpHttpExporter

OUTCOMES = ("ok", "blocked", "throttled", "error")

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CONFIDENCE_BUCKETS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class PolicySnapshot:
    """What the policy store held at the last refresh: blocked clients and budgets."""

    blocked: Mapping[str, float]
    """client -> seconds until the block expires"""
    budgets: Mapping[str, int]
    """client -> enforced queries per minute"""
    shadows: Mapping[str, int] = field(default_factory=dict)
    """client -> queries per minute of its shadow budget (refuses nothing)"""


class PolicyCollector(Collector):
    """``aml_policy_blocked``, ``aml_policy_budget_qpm`` and ``aml_policy_shadow_budget_qpm``
    from the last store snapshot.

    A collector rather than gauges, so a scrape sees one whole snapshot: never a half-cleared
    set while the refresher rewrites it.
    """

    def __init__(self, max_clients: int = 500) -> None:
        self.snapshot = PolicySnapshot({}, {})
        self._max = max_clients

    def collect(self) -> Iterable[GaugeMetricFamily]:
        snap = self.snapshot
        blocked = GaugeMetricFamily(
            "aml_policy_blocked",
            "1 if the client is blocked in the policy store",
            labels=["client"],
        )
        for client in sorted(snap.blocked)[: self._max]:
            blocked.add_metric([client], 1.0)
        budget = GaugeMetricFamily(
            "aml_policy_budget_qpm",
            "Query budget per client in the policy store",
            labels=["client"],
        )
        for client in sorted(snap.budgets)[: self._max]:
            budget.add_metric([client], float(snap.budgets[client]))
        shadow = GaugeMetricFamily(
            "aml_policy_shadow_budget_qpm",
            "Shadow query budget per client in the policy store (refuses nothing)",
            labels=["client"],
        )
        for client in sorted(snap.shadows)[: self._max]:
            shadow.add_metric([client], float(snap.shadows[client]))
        yield blocked
        yield budget
        yield shadow


class SlotsCollector(Collector):
    """The label slots' state, and the riskiest client in ``other`` per model, at scrape time
    (the latter is a scan of every tracked client: once per scrape, never per request)."""

    def __init__(self, slots: ClientSlots, models: Iterable[str]) -> None:
        self._slots = slots
        self._models = tuple(models)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        slots = self._slots
        yield GaugeMetricFamily(
            "aml_client_label_slots_used", "Clients holding a client label", value=slots.used
        )
        yield GaugeMetricFamily(
            "aml_client_label_slots_capacity",
            "Clients that can hold a client label",
            value=slots.capacity,
        )
        yield GaugeMetricFamily(
            "aml_tracked_clients", "Clients the gateway keeps risk state for", value=slots.tracked
        )
        score = GaugeMetricFamily(
            "aml_unlabelled_extraction_score",
            "Extraction score of the riskiest client counted as other (answered >= 1/s)",
            labels=["model", "client"],
        )
        rate = GaugeMetricFamily(
            "aml_unlabelled_answered_rate",
            "Answered requests/s of that client",
            labels=["model", "client"],
        )
        for model in self._models:
            worst = slots.riskiest_unlabelled(model)
            if worst is not None:
                score.add_metric([model, worst.client], worst.extraction.get(model, 0.0))
                rate.add_metric([model, worst.client], worst.answered_rate)
        yield score
        yield rate


class GatewayMetrics:
    """Every metric the gateway exports, in its own registry (several apps per test process)."""

    def __init__(
        self,
        models: Iterable[str] = (),
        *,
        client_capacity: int = 200,
        client_idle_s: float = 600.0,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "aml_requests",
            "Requests by outcome",
            ["model", "version", "client", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "aml_request_duration_seconds",
            "Time to answer an inference request",
            ["model", "version"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.detector = Histogram(
            "aml_detector_score",
            "Feature-squeezing score per input row",
            ["model", "version"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.flagged = Counter(
            "aml_flagged",
            "Flagged input rows",
            ["model", "version", "client", "reason"],
            registry=r,
        )
        self.confidence = Histogram(
            "aml_prediction_confidence",
            "Top-class probability per input row",
            ["model", "version"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.extraction = Gauge(
            "aml_client_extraction_score",
            "PRADA-style statistic (1 - Shapiro-Wilk W)",
            ["model", "client"],
            registry=r,
        )
        self.load_failures = Counter(
            "aml_model_load_failures",
            "Model versions the gateway refused or failed to load",
            ["model", "reason"],
            registry=r,
        )
        self.model_info = Gauge(
            "aml_model_info",
            "1 for the version each model serves",
            ["model", "version"],
            registry=r,
        )
        self.policy_up = Gauge(
            "aml_policy_store_up", "1 if the last policy store call succeeded", registry=r
        )
        self.policy_fail_open = Counter(
            "aml_policy_fail_open",
            "Requests served without a policy (store down, fail-open)",
            registry=r,
        )
        self.policy_fail_closed = Counter(
            "aml_policy_fail_closed",
            "Requests refused because the policy store is down",
            registry=r,
        )
        self.bad_requests = Counter(
            "aml_bad_requests", "Requests refused as malformed, by reason", ["reason"], registry=r
        )
        self.dropped = Counter(
            "aml_telemetry_dropped",
            "Spans or samples dropped (queue full or write error)",
            ["sink"],
            registry=r,
        )
        self.shadow_refusals = Counter(
            "aml_policy_shadow_refusals",
            "Requests a shadow budget would have refused (it refused none), by client label",
            ["client"],
            registry=r,
        )
        self.new_clients = Counter(
            "aml_new_clients",
            "Client ids seen for the first time (a surge is a Sybil signal)",
            registry=r,
        )
        self.policy = PolicyCollector()
        r.register(self.policy)
        self.policy_up.set(0)
        self.slots = ClientSlots(client_capacity, client_idle_s)
        r.register(SlotsCollector(self.slots, models))

    def client_label(self, client: str) -> str:
        known = self.slots.new_clients
        label, evicted = self.slots.label(client)
        if self.slots.new_clients != known:
            self.new_clients.inc()
        if evicted is not None:
            for metric in (self.requests, self.flagged, self.extraction, self.shadow_refusals):
                metric.remove_by_labels({"client": evicted})
        return label


# Spans ----------------------------------------------------------------------------------------

SPAN_KIND_SERVER = 2
STATUS_UNSET, STATUS_ERROR = 0, 2


# Ids need to be unique, not secret: a PRNG seeded once from the OS (as the OpenTelemetry SDK's
# RandomIdGenerator does) instead of a getrandom syscall per id, ~0.1 ms each on this sandbox.
_ids = random.Random()


def new_trace_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


def new_span_id() -> str:
    return f"{_ids.getrandbits(64):016x}"


def parse_traceparent(header: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a W3C ``traceparent`` header, if it is valid."""
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    trace_id, parent = parts[1].lower(), parts[2].lower()
    try:
        int(trace_id, 16), int(parent, 16)
    except ValueError:
        return None
    if set(trace_id) == {"0"} or set(parent) == {"0"}:
        return None
    return trace_id, parent


@dataclass
class Span:
    trace_id: str
    span_id: str
    name: str
    start_ns: int
    parent_span_id: str = ""
    end_ns: int = 0
    error: bool = False


AttributeValue = str | int | float | bool


def _attribute(key: str, value: AttributeValue) -> dict[str, object]:
    # OTLP JSON: int64 values are strings; ids are hex (not protobuf-JSON base64).
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


class SpanWriter:
    """Writes one OTLP ``ExportTraceServiceRequest`` JSON object per line (the Collector file
    exporter's format) to ``<dir>/traces-YYYY-MM-DD.jsonl``, off the event loop; with an
    ``exporter``, also sends each span over OTLP/HTTP."""

    def __init__(
        self,
        directory: Path | None,
        sink: JsonlSink,
        service_name: str = "aml-gateway",
        exporter: OtlpHttpExporter | None = None,
    ):
        self._dir = directory
        self._sink = sink
        self._exporter = exporter
        self._resource = {
            "attributes": [
                _attribute("service.name", service_name),
                _attribute("service.instance.id", f"{os.uname().nodename}:{os.getpid()}"),
            ]
        }

    def path_for(self, when: datetime) -> Path:
        if self._dir is None:
            raise ValueError("this span writer has no directory")
        return self._dir / f"traces-{when:%Y-%m-%d}.jsonl"

    def emit(self, span: Span, attributes: Mapping[str, AttributeValue]) -> None:
        body: dict[str, object] = {
            "traceId": span.trace_id,
            "spanId": span.span_id,
            "name": span.name,
            "kind": SPAN_KIND_SERVER,
            "startTimeUnixNano": str(span.start_ns),
            "endTimeUnixNano": str(span.end_ns),
            "attributes": [_attribute(k, v) for k, v in attributes.items()],
            "status": {"code": STATUS_ERROR if span.error else STATUS_UNSET},
        }
        if span.parent_span_id:
            body["parentSpanId"] = span.parent_span_id
        record = {
            "resourceSpans": [
                {
                    "resource": self._resource,
                    "scopeSpans": [{"scope": {"name": "console.lab.gateway"}, "spans": [body]}],
                }
            ]
        }
        if self._exporter is not None:
            self._exporter.put(record)
        if self._dir is not None:
            when = datetime.fromtimestamp(span.end_ns / 1e9, UTC)
            self._sink.put(self.path_for(when), json.dumps(record, separators=(",", ":")))
