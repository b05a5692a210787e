"""Helpers for the reader tests: files written by the gateway's own writers (SampleStore,
SpanWriter through JsonlSink), a run of the real in-process gateway, and a loopback HTTP server
standing in for Tempo and Jaeger."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import REPO, free_port

from console.config import Settings, load_settings
from console.lab.gateway.samples import Sample, SampleStore
from console.lab.gateway.sinks import JsonlSink
from console.lab.gateway.telemetry import AttributeValue, Span, SpanWriter

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PARENT_SPAN = "00f067aa0ba902b7"
"""The parent span id the carol request of the gateway run continues."""


def sample(
    n: int,
    when: datetime,
    *,
    client: str = "alice",
    model: str = "digits",
    version: str = "2",
    score: float = 0.1,
    flagged: bool = False,
    trace_id: str | None = None,
) -> Sample:
    """A sample whose input is ``n`` in every pixel (mod 17) and whose id and trace id come
    from ``n``."""
    return Sample(
        sample_id=f"{n:016x}",
        time=when.isoformat(),
        client=client,
        model=model,
        version=version,
        detector_score=score,
        extraction_score=0.25,
        prediction=n % 10,
        confidence=0.9,
        flagged=flagged,
        trace_id=trace_id or f"{n:032x}",
        input_sha256="ab" * 32,
        input=[float(n % 17)] * 64,
    )


def write_samples(root: Path, samples: list[Sample], *, hash_only: bool = False) -> None:
    """Write through the gateway's SampleStore and JsonlSink (closed: everything flushed)."""
    for day in sorted({s.time[:10] for s in samples}):
        # One sink per day: a JsonlSink batch that spans two files crashes its thread (it
        # closes the first file when it opens the second, then flushes it: KeyError).
        sink = JsonlSink("test-samples")
        sink.start()
        store = SampleStore(root, sink, fraction=1.0, hash_only=hash_only, retention_days=3650)
        for s in samples:
            if s.time[:10] == day:
                store.write(s)
        sink.close()


def span_at(
    start: datetime,
    duration_ms: float = 2.0,
    *,
    n: int = 1,
    attrs: Mapping[str, AttributeValue] | None = None,
    error: bool = False,
) -> tuple[Span, dict[str, AttributeValue]]:
    start_ns = int(start.timestamp() * 1_000_000) * 1000
    span = Span(
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        name="POST /v2/models/{name}/infer",
        start_ns=start_ns,
        end_ns=start_ns + int(duration_ms * 1e6),
        error=error,
    )
    defaults: dict[str, AttributeValue] = {
        "aml.client": "alice",
        "aml.model": "digits",
        "aml.outcome": "ok",
        "http.response.status_code": 200,
    }
    return span, {**defaults, **(attrs or {})}


def write_spans(directory: Path, spans: list[tuple[Span, dict[str, AttributeValue]]]) -> None:
    """Write through the gateway's SpanWriter and JsonlSink (closed: everything flushed)."""
    for path in sorted({_span_file(directory, span) for span, _ in spans}):
        sink = JsonlSink("test-spans")  # one per file: see write_samples
        sink.start()
        writer = SpanWriter(directory, sink)
        for span, attrs in spans:
            if _span_file(directory, span) == path:
                writer.emit(span, attrs)
        sink.close()


def _span_file(directory: Path, span: Span) -> Path:
    return SpanWriter(directory, JsonlSink("unused")).path_for(
        datetime.fromtimestamp(span.end_ns / 1e9, UTC)
    )


def unopenable(path: Path) -> None:
    """Make ``path``, a file a reader would open, fail to open even for root: a directory
    (IsADirectoryError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    path.mkdir()


# A run of the real gateway -------------------------------------------------------------------


@dataclass
class Sent:
    client: str | None
    model: str
    rows: list[list[float]]
    status: int
    trace_id: str
    parent_span_id: str | None = None


@dataclass
class GatewayRun:
    settings: Settings
    model: str
    version: str
    sent: list[Sent] = field(default_factory=list)

    @property
    def samples_dir(self) -> Path:
        return Path(self.settings.samples.path)

    @property
    def traces_dir(self) -> Path:
        return Path(self.settings.traces.path)

    def ok(self) -> list[Sent]:
        return [s for s in self.sent if s.status == 200]


def gateway_settings(lab: Any, run_dir: Path, model: str, mp: pytest.MonkeyPatch) -> Settings:
    env = {
        "CONSOLE_CONFIG": str(lab.config_path),
        "CONSOLE_RUN_DIR": str(run_dir),
        "CONSOLE_REDIS__KEY_PREFIX": f"rd{secrets.token_hex(4)}",
        "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": "readers-test-audit-key-" + "x" * 16,
        "CONSOLE_OPERATOR": "readers-tester",
        "CONSOLE_RUNBOOK_DIRS": json.dumps([str(REPO / "runbooks")]),
        "CONSOLE_TRACES__PATH": str(run_dir / "traces"),
        "CONSOLE_SAMPLES__PATH": str(run_dir / "samples"),
        "CONSOLE_GATEWAY__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_MODELS__SERVED": json.dumps([model]),
        "CONSOLE_GATEWAY__SAMPLE_FRACTION": "1.0",
    }
    for key, value in env.items():
        mp.setenv(key, value)
    return load_settings()


def infer_body(rows: list[list[float]]) -> dict[str, Any]:
    tensor = {"name": "input", "shape": [len(rows), 64], "datatype": "FP32", "data": rows}
    return {"inputs": [tensor]}


async def drive_gateway(
    run: GatewayRun,
    plan: list[tuple[str | None, str, list[list[float]], str | None]],
    flushed: Callable[[GatewayRun], bool],
) -> None:
    """Start the gateway app in process, send ``plan`` ((client, model, rows, traceparent
    parent span id)), and wait until ``flushed(run)`` holds, with the writers still running."""
    from console.lab.gateway.app import create_app

    app = create_app(run.settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        ) as client,
    ):
        await _until_ready(client)
        for who, model, rows, parent in plan:
            headers = {"X-Client-Id": who} if who else {}
            if parent:
                headers["traceparent"] = f"00-{secrets.token_hex(16)}-{parent}-01"
            response = await client.post(
                f"/v2/models/{model}/infer", json=infer_body(rows), headers=headers
            )
            run.sent.append(
                Sent(who, model, rows, response.status_code, response.headers["X-Trace-Id"], parent)
            )
        deadline = time.monotonic() + 30.0
        while not flushed(run) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


async def _until_ready(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        if (await client.get("/v2/health/ready")).status_code == 200:
            return
        await asyncio.sleep(0.05)
    pytest.fail("in-process gateway never became ready", pytrace=False)


# A stand-in for Tempo and Jaeger -------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass
class FakeTraceStore:
    """A loopback HTTP server answering ``routes[path]`` (default 404) and recording paths."""

    routes: dict[str, Answer] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    """Each request's Authorization header (None when it had none)."""
    url: str = ""


@contextmanager
def trace_store() -> Iterator[FakeTraceStore]:
    store = FakeTraceStore()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            store.seen.append(self.path)
            store.authorizations.append(self.headers.get("Authorization"))
            answer = store.routes.get(self.path, Answer(404, b'{"error":"trace not found"}'))
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    store.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield store
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def otlp_lines(traces_dir: Path, trace_id: str) -> list[dict[str, Any]]:
    """The gateway's OTLP JSON lines that carry spans of ``trace_id``."""
    found = []
    for path in sorted(traces_dir.glob("traces-*.jsonl")):
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            ids = {
                span["traceId"]
                for rs in doc["resourceSpans"]
                for ss in rs["scopeSpans"]
                for span in ss["spans"]
            }
            if trace_id in ids:
                found.append(doc)
    return found


def jaeger_body(lines: list[dict[str, Any]]) -> bytes:
    resource_spans = [rs for doc in lines for rs in doc["resourceSpans"]]
    return json.dumps({"result": {"resourceSpans": resource_spans}}).encode()


def tempo_body(lines: list[dict[str, Any]]) -> bytes:
    """As Tempo answers: ``batches``, ids in base64 (its jsonpb marshalling), enum names."""

    def b64(hex_id: str) -> str:
        return base64.b64encode(bytes.fromhex(hex_id)).decode()

    batches = []
    for doc in lines:
        for rs in doc["resourceSpans"]:
            rs = json.loads(json.dumps(rs))
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    span["traceId"] = b64(span["traceId"])
                    span["spanId"] = b64(span["spanId"])
                    if "parentSpanId" in span:
                        span["parentSpanId"] = b64(span["parentSpanId"])
                    span["kind"] = "SPAN_KIND_SERVER"
                    span["status"] = {}  # jsonpb omits the zero code
            batches.append(rs)
    return json.dumps({"batches": batches}).encode()
