"""A recorded incident for the snapshot tests: the console app on deterministic data, at a
frozen 03:00 UTC, with `mallory-1` extracting `digits` and already blocked.

The data comes in the real adapters' result types (QueryResult, Alert, Block, ModelVersion...)
and through the real views layer (joins, sorting, top-K, heatmap alignment); samples, spans and
the audit log are real files written by the gateway's and the audit log's own writers. Values
are those of the lab under attack (`lab attack extraction --client mallory-1`), rounded. This is
the one place for recorded data: every other TUI test runs on the real stack.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from console.adapters.alertmanager import Alert, Silence
from console.adapters.backends import Backends
from console.adapters.gateway_state import GatewayClients, LabelSlots, UnlabelledClient
from console.adapters.mlflow import ModelVersion, RegisteredModel
from console.adapters.policy import Block, Budget, Hardening
from console.adapters.prometheus import QueryResult, RangeResult, Sample, Series
from console.audit.log import AuditLog
from console.audit.records import AuditEvent
from console.config import Settings
from console.lab.gateway.samples import Sample as StoredSample
from console.lab.gateway.samples import SampleStore
from console.lab.gateway.sinks import JsonlSink
from console.lab.gateway.telemetry import Span, SpanWriter
from console.tui.app import ConsoleApp
from console.views import queries as q
from console.views.models import INSTANT_UNION, labelled_union

NOW = datetime(2026, 12, 1, 3, 0, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
MODEL = "digits"
ATTACKER = "mallory-1"

# (client, req/s, extraction score, flagged/s, refused share, req/s over the last 10 min)
CLIENTS = [
    (
        ATTACKER,
        31.2,
        0.84,
        0.0,
        0.97,
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 18, 29, 30, 31, 31, 30, 31, 30, 31, 31, 8],
    ),
    ("alice", 1.29, 0.08, 0.0, 0.0, [1.2, 1.3, 1.1, 1.3, 1.4, 1.2, 1.3] * 3),
    ("bob", 1.18, 0.12, 0.0, 0.0, [1.1, 1.2, 1.0, 1.3, 1.2, 1.1, 1.2] * 3),
    ("carol", 1.15, 0.08, 0.02, 0.0, [1.0, 1.2, 1.1, 1.2, 1.1, 1.2, 1.1] * 3),
    ("dave", 0.78, 0.12, 0.0, 0.0, [0.7, 0.8, 0.8, 0.9, 0.7, 0.8, 0.8] * 3),
    (
        "[bold]erin[/bold]\x1b]52;c;ZWNobyBoaQ==\x07",
        0.84,
        0.07,
        0.0,
        0.0,
        [0.8, 0.9, 0.8, 0.8, 0.9, 0.8, 0.9] * 3,
    ),
]
"""The last client's id is hostile (markup and an OSC 52 clipboard write): it must show as
text."""

LATENCY = {"p50": 0.0016, "p95": 0.0049, "p99": 0.0097}


def _vector(rows: list[tuple[dict[str, str], float]]) -> QueryResult:
    ts = NOW.timestamp()
    return QueryResult(
        result_type="vector",
        samples=[Sample(metric=m, timestamp=ts, value=v) for m, v in rows],
    )


def _per_client(index: int) -> QueryResult:
    return _vector([({"model": MODEL, "client": c[0]}, float(c[index])) for c in CLIENTS])  # type: ignore[arg-type]


INSTANT: dict[str, QueryResult] = {
    q.CLIENT_RATE.promql: _per_client(1),
    q.CLIENT_EXTRACTION.promql: _per_client(2),
    q.CLIENT_FLAGGED.promql: _per_client(3),
    q.CLIENT_REFUSED.promql: _per_client(4),
    q.CLIENTS_ACTIVE.promql: _vector([({"model": MODEL}, float(len(CLIENTS)))]),
    q.MODEL_REQUESTS.promql: _vector([({"model": MODEL}, 37.4)]),
    q.MODEL_LATENCY_P50.promql: _vector([({"model": MODEL}, LATENCY["p50"])]),
    q.MODEL_LATENCY_P95.promql: _vector([({"model": MODEL}, LATENCY["p95"])]),
    q.MODEL_LATENCY_P99.promql: _vector([({"model": MODEL}, LATENCY["p99"])]),
    q.MODEL_ERRORS.promql: _vector([({"model": MODEL}, 0.0)]),
    q.MODEL_FLAG_RATE.promql: _vector([({"model": MODEL}, 0.006)]),
    q.MODEL_CONFIDENCE_Z.promql: _vector([({"model": MODEL}, -3.4)]),
}
CONFIDENCE = [0.978, 0.979, 0.977, 0.978, 0.980, 0.979, 0.978, 0.977, 0.979, 0.978] * 5 + [
    0.97,
    0.95,
    0.93,
    0.92,
    0.92,
    0.91,
    0.92,
    0.91,
    0.92,
    0.92,
    0.91,
]


class RecordedPrometheus:
    """Answers the views' PromQL from the recording; a range query's points land on the
    steps it asks for (the views align them to their own clock)."""

    async def query(self, expr: str, time: Any = None) -> QueryResult:
        if expr == INSTANT_UNION:  # the Models view's panels in one query
            return labelled_union([INSTANT[pq.promql] for pq in q.MODEL_INSTANT])
        return INSTANT.get(expr, QueryResult(result_type="vector"))

    async def query_range(self, expr: str, start: float, end: float, step: float) -> RangeResult:
        steps = [start + i * step for i in range(int((end - start) // step) + 1)]
        if expr == q.CLIENT_HEATMAP.promql:
            series = [_range({"model": MODEL, "client": c[0]}, steps, c[5]) for c in CLIENTS]  # type: ignore[arg-type]
        elif expr == q.MODEL_CONFIDENCE.promql:
            series = [_range({"model": MODEL}, steps, CONFIDENCE)]
        else:
            series = []
        return RangeResult(series=series)

    async def aclose(self) -> None:
        return None


def _range(metric: dict[str, str], steps: list[float], values: list[float]) -> Series:
    tail = values[-len(steps) :]
    return Series(metric=metric, points=list(zip(steps[-len(tail) :], tail, strict=True)))


class RecordedAlertmanager:
    async def alerts(self, filters: list[str] | None = None) -> list[Alert]:
        return [
            Alert(
                fingerprint="3f1c0de2a9b84e11",
                labels={
                    "alertname": "AMLExtractionSuspected",
                    "severity": "critical",
                    "client": ATTACKER,
                    "model": MODEL,
                },
                annotations={
                    "summary": f"{ATTACKER} may be extracting {MODEL} (score 0.84)",
                    "description": "PRADA-style score 0.84 > 0.15 while answered 31 req/s",
                    "runbook": "contain-extraction",
                },
                startsAt=NOW - timedelta(seconds=95),
                state="active",
            ),
            Alert(
                fingerprint="9a0b7c6d5e4f3a21",
                labels={
                    "alertname": "AMLConfidenceShift",
                    "severity": "warning",
                    "model": MODEL,
                    "note": "[link=https://evil.example]x[/link]\x1b[31m",
                },
                annotations={"summary": "[bold]mean confidence z = -3.4[/bold]"},
                startsAt=NOW - timedelta(minutes=4),
                state="active",
            ),
        ]

    async def silences(self) -> list[Silence]:
        return []

    async def aclose(self) -> None:
        return None


VERSIONS = [
    ModelVersion(
        name=MODEL,
        version="1",
        status="READY",
        tags={"kind": "logreg", "onnx_sha256": "b03d304510e3c637" + "0" * 48},
    ),
    ModelVersion(
        name=MODEL,
        version="2",
        status="READY",
        tags={"kind": "mlp", "onnx_sha256": "c6f08451e2790cb5" + "0" * 48},
    ),
]


class RecordedRegistry:
    async def get_model(self, name: str) -> RegisteredModel | None:
        return RegisteredModel(name=name, aliases={"champion": "2", "previous": "1"})

    async def list_versions(self, name: str) -> list[ModelVersion]:
        return list(VERSIONS)

    async def aclose(self) -> None:
        return None


class RecordedPolicy:
    async def list_blocks(self) -> list[Block]:
        return [
            Block(
                client=ATTACKER,
                reason="AMLExtractionSuspected firing",
                operator="oncall",
                run_id="r-20261201-0259-block",
                created_at=NOW - timedelta(minutes=2),
                expires_at=NOW + timedelta(minutes=28),
            )
        ]

    async def list_budgets(self) -> list[Budget]:
        set_at = NOW - timedelta(minutes=19)
        return [
            Budget(
                client="acme-scraper-7",
                qpm=10,
                operator="oncall",
                run_id="r-20261201-0241-budget",
                set_at=set_at,
            )
        ]

    async def list_hardenings(self) -> list[Hardening]:
        return [
            Hardening(
                client="acme-scraper-7",
                mode="label-only",
                operator="oncall",
                run_id="r-20261201-0241-harden",
                created_at=NOW - timedelta(minutes=19),
                expires_at=NOW + timedelta(minutes=41),
            )
        ]


class RecordedGatewayState:
    """Every slot held by throwaway ids: a second extractor hides in `other`."""

    async def unlabelled(self, limit: int = 50) -> GatewayClients:
        hidden = [
            UnlabelledClient(
                client="mallory-7f3a",
                risk=0.83,
                extraction={MODEL: 0.83},
                flag_rate=0.0,
                refused_share=0.0,
                answered_rate=11.5,
                idle_s=0.4,
            ),
            UnlabelledClient(
                client="sybil-0193",
                risk=0.09,
                extraction={},
                flag_rate=0.09,
                refused_share=0.0,
                answered_rate=0.02,
                idle_s=41.0,
            ),
        ]
        return GatewayClients(
            label_slots=LabelSlots(capacity=200, used=200), tracked=412, unlabelled=hidden
        )


class _NoRedis:
    async def aclose(self) -> None:
        return None


def write_files(settings: Settings) -> None:
    """The sample store, the spans and the audit log of the recording, as their writers
    write them."""
    digit = [
        0,
        0,
        5,
        13,
        9,
        1,
        0,
        0,
        0,
        0,
        13,
        15,
        10,
        15,
        5,
        0,
        0,
        3,
        15,
        2,
        0,
        11,
        8,
        0,
        0,
        4,
        12,
        0,
        0,
        8,
        8,
        0,
        0,
        5,
        8,
        0,
        0,
        9,
        8,
        0,
        0,
        4,
        11,
        0,
        1,
        12,
        7,
        0,
        0,
        2,
        14,
        5,
        10,
        12,
        0,
        0,
        0,
        0,
        6,
        13,
        10,
        0,
        0,
        0,
    ]
    sink = JsonlSink("recorded")
    sink.start()
    store = SampleStore(
        Path(settings.samples.path), sink, fraction=1.0, hash_only=False, retention_days=3650
    )
    spans = SpanWriter(Path(settings.traces.path), sink)
    for n in range(6):
        when = NOW - timedelta(seconds=60 - 7 * n)
        trace_id = f"{0xA1 + n:02x}" * 16
        flagged = n % 2 == 0
        store.write(
            StoredSample(
                sample_id=f"{n:016x}",
                time=when.isoformat(),
                client=ATTACKER,
                model=MODEL,
                version="2",
                detector_score=0.61 if flagged else 0.12,
                extraction_score=0.84,
                prediction=(n * 3) % 10,
                confidence=0.55 if flagged else 0.97,
                flagged=flagged,
                trace_id=trace_id,
                input_sha256=f"{n:02x}" * 32,
                input=[float((v + 3 * n) % 17) for v in digit],
            )
        )
        start_ns = int(when.timestamp() * 1e9)
        spans.emit(
            Span(
                trace_id=trace_id,
                span_id=f"{n + 1:016x}",
                name="POST /v2/models/{name}/infer",
                start_ns=start_ns,
                end_ns=start_ns + 2_100_000,
            ),
            {
                "aml.client": ATTACKER,
                "aml.model": MODEL,
                "aml.model_version": "2",
                "aml.outcome": "blocked" if n >= 4 else "ok",
                "aml.detector_score": 0.61,
                "aml.extraction_score": 0.84,
                "http.response.status_code": 403 if n >= 4 else 200,
            },
        )
    sink.close()
    _write_audit(settings)
    _write_drill(settings)


def _write_drill(settings: Settings) -> None:
    from console.drills.report import DrillReport, DrillScores, TimelineEvent, write_report

    events = [
        (0.1, "drill-start", "scenario extraction, attacker mallory-1-8e6ae8"),
        (5.1, "attack-launched", "extraction round 1/1"),
        (9.5, "first-request", "14 requests at the gateway"),
        (32.5, "alert-firing", "AMLExtractionSuspected client=mallory-1-8e6ae8"),
        (32.6, "response-started", "contain-extraction"),
        (33.0, "mitigation", "contain-extraction/block policy.block_client"),
        (34.6, "contained", "25 of 25 attacker requests refused in the last second"),
        (34.6, "drill-end", ""),
    ]
    rate = [0.0] * 8 + [14.0, 29.8, 27.3, 15.7, 29.3, 28.0] + [30.0] * 20 + [1.0]
    write_report(
        settings,
        DrillReport(
            id="20261201T025500-extraction-8e6ae8",
            scenario="extraction",
            responder="auto",
            attacker="mallory-1-8e6ae8",
            model=MODEL,
            started_at=(NOW - timedelta(minutes=5)).isoformat(),
            ended_at=(NOW - timedelta(minutes=4)).isoformat(),
            scores=DrillScores(
                contained=True,
                time_to_detect_s=23.0,
                time_to_mitigate_s=23.5,
                time_to_contain_s=25.1,
                detect_to_mitigate_s=0.5,
                detection_floor_s=25.0,
                attacker_queries_answered=679,
                attacker_success=0.49,
                attacker_success_metric="surrogate_agreement",
                benign_blocked=0,
                benign_error_rate=0.0,
                false_alerts=0,
            ),
            timeline=[TimelineEvent(at, kind, detail) for at, kind, detail in events],
            series=[
                {"at_s": float(i + 1), "mallory-1-8e6ae8": v, "alice": 1.0}
                for i, v in enumerate(rate)
            ],
        ),
    )


def _write_audit(settings: Settings) -> None:
    import console.audit.log as audit_log

    clock = itertools.count()

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> FrozenDatetime:  # type: ignore[override]
            moment = NOW - timedelta(seconds=120) + timedelta(milliseconds=40 * next(clock))
            return cls.fromtimestamp(moment.timestamp(), tz)

    base = {
        "operator": "oncall",
        "environment": settings.environment,
        "run_id": "r-20261201-0259-block",
        "runbook": "block-client",
        "target": f"client:{ATTACKER}",
    }
    step = {
        "step": "block",
        "action": "policy.block_client",
        "arguments": {"client": ATTACKER, "ttl": "30m"},
    }
    rollback = {
        "operator": "oncall",
        "environment": settings.environment,
        "run_id": "r-20261201-0259-rollback",
        "runbook": "rollback-model",
        "target": f"model:{MODEL}",
    }
    move = {
        "step": "rollback",
        "action": "registry.rollback",
        "arguments": {"model": MODEL, "alias": "champion", "to_alias": "previous"},
        "before": {"model": MODEL, "alias": "champion", "version": "3"},
        "after": {"model": MODEL, "alias": "champion", "version": "2"},
    }
    events = [
        AuditEvent(kind="run-intent", result="planned", **base),
        AuditEvent(kind="step-intent", before=None, **base, **step),
        AuditEvent(kind="step-outcome", result="ok", after={"blocked": True}, **base, **step),
        AuditEvent(kind="run-outcome", result="succeeded", **base),
        AuditEvent(kind="run-intent", result="planned", **rollback),
        AuditEvent(kind="step-intent", **rollback, **move),
        AuditEvent(kind="step-outcome", result="ok", **rollback, **move),
        AuditEvent(kind="run-outcome", result="succeeded", **rollback),
    ]
    original = audit_log.datetime  # type: ignore[attr-defined]
    audit_log.datetime = FrozenDatetime  # type: ignore[attr-defined, misc]
    try:
        log = AuditLog.from_settings(settings)
        for event in events:
            log.append(event)
    finally:
        audit_log.datetime = original  # type: ignore[attr-defined]


def recorded_settings(root: Path, **changes: Any) -> Settings:
    return Settings(
        environment=changes.pop("environment", "lab"),
        operator="oncall",
        run_dir=root,
        runbook_dirs=[REPO / "runbooks"],
        samples={"path": str(root / "samples")},
        traces={"path": str(root / "traces")},
        audit={
            "path": root / "audit" / "audit.jsonl",
            "hmac_key": "recorded-snapshot-audit-key-" + "x" * 16,
        },
        models={"served": [MODEL]},
        **changes,
    )


class RecordedConsoleApp(ConsoleApp):
    """The console at the recording's frozen time, its views never refreshing again after
    their first draw (so a snapshot is of one state)."""

    def now(self) -> datetime:
        return NOW

    def monotonic(self) -> float:
        return 1000.0


def recorded_app(root: Path, start: str, **settings_changes: Any) -> RecordedConsoleApp:
    settings = recorded_settings(root, **settings_changes)
    write_files(settings)
    sources = Backends(
        settings,
        prometheus=RecordedPrometheus(),  # type: ignore[arg-type]
        alertmanager=RecordedAlertmanager(),  # type: ignore[arg-type]
        registry=RecordedRegistry(),  # type: ignore[arg-type]
        redis=_NoRedis(),  # type: ignore[arg-type]
        policy=RecordedPolicy(),  # type: ignore[arg-type]
        gateway_state=RecordedGatewayState(),  # type: ignore[arg-type]
    )
    return RecordedConsoleApp(settings, sources, start=start, refresh_s=3600)
