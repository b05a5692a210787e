"""The gateway's spans over OTLP/HTTP (JSON), besides its trace files: a receiver gets every
request's span with the ids the client saw in X-Trace-Id; a receiver that refuses costs the
spans (counted in aml_telemetry_dropped_total{sink="otlp"}), never a request, and the files
keep them. No OTLP receiver (Collector, Tempo, Jaeger) installs from this machine's
registries, so the receiver is an HTTP server of the test's own that parses what it gets with
the console's OTLP JSON reader."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from gateway_support import body, digits, metric_lines, spans
from support import free_port

from console.adapters.traces import parse_otlp_json
from console.lab.seed import SeededModel


class Receiver:
    def __init__(self, status: int) -> None:
        self.status = status
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.content_types: list[str] = []
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.paths.append(self.path)
                receiver.content_types.append(self.headers.get("Content-Type", ""))
                receiver.bodies.append(json.loads(raw))
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def span_ids(self) -> set[str]:
        return {s.trace_id for b in self.bodies for s in parse_otlp_json(b)}


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    made = Receiver(getattr(request, "param", 200))
    yield made
    made.server.shutdown()


async def _send(gw: Any, model: str, count: int) -> list[str]:
    trace_ids = []
    for row in digits(count):
        response = await gw.client.post(
            f"/v2/models/{model}/infer", json=body([row]), headers={"X-Client-Id": "otlp-client"}
        )
        assert response.status_code == 200, response.text
        trace_ids.append(response.headers["x-trace-id"])
    return trace_ids


async def _wait(check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


async def test_spans_reach_an_otlp_http_receiver(
    start_in_process: Any,
    seeded_model: SeededModel,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSOLE_TRACES__OTLP_ENDPOINT", receiver.url)
    gw = await start_in_process(seeded_model.name)
    await _wait(lambda: gw.gateway.models.ready, 30)
    sent = await _send(gw, seeded_model.name, 3)
    await _wait(lambda: set(sent) <= receiver.span_ids(), 10)
    assert set(receiver.paths) == {"/v1/traces"}
    assert all(ct.startswith("application/json") for ct in receiver.content_types)
    got = [s for b in receiver.bodies for s in parse_otlp_json(b) if s.trace_id in sent]
    assert {s.attributes["aml.client"] for s in got} == {"otlp-client"}
    assert {s.attributes["aml.model"] for s in got} == {seeded_model.name}
    await _wait(lambda: set(sent) <= {s["traceId"] for s in spans(gw.gw.traces_dir)}, 10)


@pytest.mark.parametrize("receiver", [503], indirect=True)
async def test_a_refusing_receiver_costs_spans_not_requests(
    start_in_process: Any,
    seeded_model: SeededModel,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSOLE_TRACES__OTLP_ENDPOINT", receiver.url)
    gw = await start_in_process(seeded_model.name)
    await _wait(lambda: gw.gateway.models.ready, 30)
    sent = await _send(gw, seeded_model.name, 3)  # every request answered 200
    await _wait(lambda: receiver.span_ids() >= set(sent), 10)  # it was sent, then refused
    await _wait(lambda: set(sent) <= {s["traceId"] for s in spans(gw.gw.traces_dir)}, 10)
    exporter = gw.gateway.otlp
    assert exporter is not None
    # The receiver keeps a batch before it answers 503; the drop is counted once the exporter
    # has read that answer, so wait for the counter rather than read it once.
    deadline = time.monotonic() + 10
    dropped: list[str] = []
    while time.monotonic() < deadline:
        text = (await gw.client.get("/metrics")).text
        dropped = [
            line
            for line in metric_lines(text, "aml_telemetry_dropped_total")
            if 'sink="otlp"' in line
        ]
        if dropped and float(dropped[0].split()[-1]) >= 3:
            break
        await asyncio.sleep(0.1)
    assert dropped and float(dropped[0].split()[-1]) >= 3, dropped
    assert exporter.exported == 0
