"""console.adapters.prometheus against real Prometheus and VictoriaMetrics (the same tests on
both), plus the few answers a local engine cannot be made to give (warnings, partial responses,
server-side timeouts), through httpx.MockTransport."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from support import free_port

from console.adapters.prometheus import PrometheusClient
from console.errors import BackendResponseError, BackendUnavailable


def connect(url: str, **kwargs: Any) -> PrometheusClient:
    return PrometheusClient.connect(url, 5.0, **kwargs)


async def test_instant_vector(engine_url: str) -> None:
    async with connect(engine_url) as prom:
        result = await prom.query("up")
    assert result.result_type == "vector" and not result.warnings
    [sample] = result.samples
    assert sample.metric["__name__"] == "up" and sample.value == 1.0
    assert sample.metric["job"] in ("prometheus", "victoria-metrics")
    assert abs(sample.timestamp - time.time()) < 30


async def test_instant_at_a_given_time(engine_url: str) -> None:
    async with connect(engine_url) as prom:
        [latest] = (await prom.query("timestamp(up)")).samples
        at = datetime.fromtimestamp(latest.value + 0.5, UTC)
        result = await prom.query("up", at)
    assert [s.timestamp for s in result.samples] == [pytest.approx(at.timestamp(), abs=0.001)]


async def test_scalar_expression(engine_url: str) -> None:
    async with connect(engine_url) as prom:
        result = await prom.query("1 + 1")
    # Prometheus answers a scalar, VictoriaMetrics a one-element vector: both read the same.
    assert result.result_type in ("scalar", "vector")
    assert [(s.metric, s.value) for s in result.samples] == [({}, 2.0)]


async def test_range_query(engine_url: str) -> None:
    end = datetime.now(UTC)
    async with connect(engine_url) as prom:
        result = await prom.query_range("up", end - timedelta(seconds=30), end, 5)
    [series] = result.series
    assert series.metric["__name__"] == "up"
    times = [t for t, _ in series.points]
    assert times == sorted(times) and len(times) >= 1
    assert {v for _, v in series.points} == {1.0}


async def test_parse_error_carries_the_engines_text(engine_url: str) -> None:
    # Long enough that a 200-character cut would lose VictoriaMetrics' reason (it repeats the
    # query first).
    expr = 'sum(rate(aml_requests_total{client="' + "x" * 250 + '"}[1m])) by ('
    async with connect(engine_url) as prom:
        with pytest.raises(BackendResponseError) as info:
            await prom.query(expr)
    error = info.value
    assert error.status in (400, 422) and not error.retryable
    where, _, reason = str(error).partition("/api/v1/query: ")
    assert reason and "?" not in where  # the URL without the query string, then the reason
    assert any(r in reason for r in ("parse error", "unexpected token", "unparsed data")), reason


async def test_response_over_the_limit_fails_fast(engine_url: str) -> None:
    async with connect(engine_url, max_response_bytes=300) as prom:
        assert (await prom.query("1")).samples
        with pytest.raises(BackendResponseError, match="over the 300-byte limit") as info:
            await prom.query('{__name__=~".+"}')  # every series the engine has of itself
    assert not info.value.retryable


async def test_unreachable_engine_is_unavailable_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    async with PrometheusClient.connect(url, 1.0, retries=2) as prom:
        with pytest.raises(BackendUnavailable, match="cannot connect") as info:
            await prom.query("up")
    assert info.value.retryable
    assert time.monotonic() - started < 5


async def test_bad_arguments_are_refused_before_sending() -> None:
    async with PrometheusClient.connect("http://127.0.0.1:9", 1.0) as prom:
        with pytest.raises(ValueError, match="timezone-aware"):
            await prom.query("up", datetime(2026, 1, 1))  # noqa: DTZ001 - the point
        with pytest.raises(ValueError, match="positive"):
            await prom.query_range("up", 0, 10, 0)


def mock(handler: Any, **kwargs: Any) -> PrometheusClient:
    return PrometheusClient.connect(
        "http://engine.test", 5.0, transport=httpx.MockTransport(handler), **kwargs
    )


def answer(status: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode())


async def test_warnings_and_partial_responses_travel_on_the_result() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["timeout"] == "4.500"  # bounded on the server side too
        return answer(
            200,
            {
                "status": "success",
                "isPartial": True,
                "warnings": ["remote read: store eu-1 did not answer"],
                "data": {
                    "resultType": "vector",
                    "result": [
                        {"metric": {"job": "a"}, "value": [1700000000.5, "NaN"]},
                        {"metric": {"job": "h"}, "histogram": [1700000000.5, {"count": "3"}]},
                    ],
                },
            },
        )

    async with mock(handler) as prom:
        result = await prom.query("up")
    assert [(s.metric, s.timestamp) for s in result.samples] == [({"job": "a"}, 1700000000.5)]
    assert result.warnings == [
        "remote read: store eu-1 did not answer",
        "partial response: some storage nodes did not answer",
        "native histogram samples are not supported and were left out",
    ]


async def test_server_timeout_is_not_retried_but_unavailable_is() -> None:
    calls: list[str] = []

    def timeout(request: httpx.Request) -> httpx.Response:
        calls.append("timeout")
        error = "query timed out in expression evaluation"
        return answer(503, {"status": "error", "errorType": "timeout", "error": error})

    async with mock(timeout, retries=2) as prom:
        with pytest.raises(BackendResponseError, match="HTTP 503 timeout: query timed out"):
            await prom.query("up")
    assert calls == ["timeout"]

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append("flaky")
        if len(calls) < 4:
            return answer(503, {"status": "error", "errorType": "unavailable", "error": "busy"})
        return answer(200, {"status": "success", "data": {"resultType": "vector", "result": []}})

    async with mock(flaky, retries=2) as prom:
        assert (await prom.query("up")).samples == []
    assert calls == ["timeout", "flaky", "flaky", "flaky"]


async def test_garbage_is_a_response_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        result = [{"metric": {}, "value": ["soon", "1"]}]
        return answer(
            200, {"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    async with mock(handler) as prom:
        with pytest.raises(BackendResponseError, match="malformed result"):
            await prom.query("up")
