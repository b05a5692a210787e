"""Every PromQL expression behind a view, defined once and named, so a panel can show the
query it was drawn from (as Grafana's inspector does). The series come from the lab's
recording rules (configs/prometheus/aml-recording.yml) and the gateway's metric contract."""

from __future__ import annotations

from dataclasses import dataclass

from console.views import client_selection as sel


@dataclass(frozen=True)
class PanelQuery:
    key: str
    title: str
    promql: str


HEATMAP_WINDOW_S = 600
HEATMAP_STEP_S = 30

CLIENT_RATE = PanelQuery(
    "clients.rate",
    "Request rate of the listed clients (top-K per model by rate, score, flags, refusals)",
    sel.LISTED["rate"],
)
CLIENT_HEATMAP = PanelQuery(
    "clients.heatmap", "Request rate over time, busiest clients", sel.HEATMAP_RECORDED
)
CLIENT_EXTRACTION = PanelQuery(
    "clients.extraction",
    "Extraction score of the listed clients (PRADA-style)",
    sel.LISTED["extraction"],
)
CLIENT_FLAGGED = PanelQuery(
    "clients.flagged", "Flagged inputs per second of the listed clients", sel.LISTED["flagged"]
)
CLIENT_REFUSED = PanelQuery(
    "clients.refused",
    "Share of requests refused (403, 429) of the listed clients",
    sel.LISTED["refused"],
)
CLIENTS_ACTIVE = PanelQuery("clients.active", "Active clients per model", sel.ACTIVE_RECORDED)
MODEL_REQUESTS = PanelQuery(
    "models.requests", "Requests per second per model", "aml:requests:rate1m"
)
MODEL_LATENCY_P50 = PanelQuery(
    "models.latency_p50", "Latency P50 (5m)", "max by (model) (aml:latency_seconds:p50_5m)"
)
MODEL_LATENCY_P95 = PanelQuery(
    "models.latency_p95", "Latency P95 (5m)", "max by (model) (aml:latency_seconds:p95_5m)"
)
MODEL_LATENCY_P99 = PanelQuery(
    "models.latency_p99", "Latency P99 (5m)", "max by (model) (aml:latency_seconds:p99_5m)"
)
MODEL_ERRORS = PanelQuery(
    "models.errors", "Error ratio (1m)", "max by (model) (aml:errors:ratio_rate1m)"
)
MODEL_FLAG_RATE = PanelQuery(
    "models.flag_rate", "Detector flag rate (1m)", "max by (model) (aml:flag_rate:ratio_rate1m)"
)
MODEL_CONFIDENCE_Z = PanelQuery(
    "models.confidence_z",
    "Confidence shift, z-score against the last 30 minutes (M7)",
    "aml:model_confidence:zscore_1m",
)
MODEL_CONFIDENCE = PanelQuery(
    "models.confidence",
    "Mean prediction confidence (1m) over time",
    "aml:model_confidence:mean_1m",
)
CONFIDENCE_WINDOW_S = 1800
CONFIDENCE_STEP_S = 30

CLIENT_INSTANT: tuple[PanelQuery, ...] = (
    CLIENT_RATE,
    CLIENT_EXTRACTION,
    CLIENT_FLAGGED,
    CLIENT_REFUSED,
    CLIENTS_ACTIVE,
)
"""The Clients view's instant queries, read at one evaluation time (its heatmap is a range)."""
MODEL_INSTANT: tuple[PanelQuery, ...] = (
    MODEL_REQUESTS,
    MODEL_LATENCY_P50,
    MODEL_LATENCY_P95,
    MODEL_LATENCY_P99,
    MODEL_ERRORS,
    MODEL_FLAG_RATE,
    MODEL_CONFIDENCE_Z,
)
"""The Models view's instant queries (its confidence plot is a range)."""

ALL: tuple[PanelQuery, ...] = (
    CLIENT_RATE,
    CLIENT_HEATMAP,
    CLIENT_EXTRACTION,
    CLIENT_FLAGGED,
    CLIENT_REFUSED,
    CLIENTS_ACTIVE,
    MODEL_REQUESTS,
    MODEL_LATENCY_P50,
    MODEL_LATENCY_P95,
    MODEL_LATENCY_P99,
    MODEL_ERRORS,
    MODEL_FLAG_RATE,
    MODEL_CONFIDENCE_Z,
    MODEL_CONFIDENCE,
)
