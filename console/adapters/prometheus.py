"""PromQL over the Prometheus HTTP API: instant and range queries.

Views speak only ``/api/v1/query`` and ``/api/v1/query_range``, so they work unchanged against
any engine that implements them: Prometheus, VictoriaMetrics, Thanos, Mimir. ``doctor`` also
reads the build info, the loaded rules and the metric metadata.

Failures arrive as ``AdapterError``s: ``BackendUnavailable`` (connect error, timeout; retried a
bounded number of times) or ``BackendResponseError`` carrying the engine's own ``errorType`` and
``error`` text (a PromQL parse error, a query that timed out on the server, a body over the size
limit). Warnings of a successful answer (Prometheus' ``warnings``, VictoriaMetrics'
``isPartial``) travel on the result, for the UI to show beside the data.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from console.adapters.http import (
    MAX_RESPONSE_BYTES,
    endpoint_transport,
    make_client,
    request_json,
)
from console.adapters.retry import with_retries
from console.endpoints import HttpClientOptions
from console.errors import BackendResponseError, SeriesLimitError
from console.urls import redact_url, redact_urls_in

API = "/api/v1"
SERIES_LIMIT = re.compile(
    r"timeseries exceeds|maxUniqueTimeseries|maxSamplesPerQuery|maxSeriesPerQuery"
    r"|too many samples|maximum number of series|series limit|max-series"
)
"""How engines say a query hit a series or sample limit: VictoriaMetrics, Prometheus'
``--query.max-samples``, Mimir, Thanos."""
ERROR_TEXT_CHARS = 2000
"""VictoriaMetrics repeats the whole query before the reason: keep enough to reach it."""

Timestamp = datetime | float
"""An aware datetime, or Unix seconds."""


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class Sample(_Result):
    """One value of an instant query (a vector element, or a scalar with no labels)."""

    metric: dict[str, str]
    timestamp: float
    value: float


class Series(_Result):
    """One series of a range query (or of an instant query over a range selector)."""

    metric: dict[str, str]
    points: list[tuple[float, float]]
    """(Unix seconds, value), in time order."""


class QueryResult(_Result):
    result_type: Literal["vector", "scalar", "matrix", "string"]
    samples: list[Sample] = Field(default_factory=list)
    """vector and scalar results."""
    series: list[Series] = Field(default_factory=list)
    """matrix results (``expr`` was a range selector such as ``up[1m]``)."""
    text: str | None = None
    """string results."""
    warnings: list[str] = Field(default_factory=list)


class RangeResult(_Result):
    series: list[Series]
    warnings: list[str] = Field(default_factory=list)


class LoadedRules(_Result):
    alerts: frozenset[str]
    records: frozenset[str]


class PrometheusClient:
    """Async PromQL client. Build with ``connect``; close with ``aclose`` (or ``async with``)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        backend: str = "prometheus",
        retries: int = 2,
        query_timeout_s: float | None = None,
    ) -> None:
        self._client = client
        self.backend = backend
        self._retries = retries
        self._query_timeout_s = query_timeout_s

    @classmethod
    def connect(
        cls,
        url: str,
        timeout_s: float,
        *,
        backend: str = "prometheus",
        retries: int = 2,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        options: HttpClientOptions | None = None,
    ) -> PrometheusClient:
        """A client for the engine at ``url``, with ``options``' credentials, TLS and proxy.
        Queries are also bounded on the server side (``timeout`` parameter), a little under
        ``timeout_s`` so its error text arrives first. ``transport`` replaces the network (a
        test's ``httpx.MockTransport``)."""
        inner = transport or endpoint_transport(
            options.tls_config if options else None,
            options.proxy_url if options else None,
            where=f"{backend} at {redact_url(url)}",
        )
        limited = _LimitedTransport(inner, max_response_bytes, backend)
        client = make_client(
            url,
            timeout_s,
            options=options,
            backend=backend,
            transport=limited,
            event_hooks={"response": [_api_error_hook(backend)]},
        )
        return cls(client, backend=backend, retries=retries, query_timeout_s=timeout_s * 0.9)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> PrometheusClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def query(self, expr: str, time: Timestamp | None = None) -> QueryResult:
        """Evaluate ``expr`` at ``time`` (default: the engine's now)."""
        params = {"query": expr}
        if time is not None:
            params["time"] = _unix(time)
        data, warnings = await self._get("/query", params)
        try:
            return _instant(data, warnings, self.backend)
        except (ValueError, TypeError, KeyError) as exc:
            raise self._garbage(f"/query answered a malformed result ({exc})") from None

    async def query_range(
        self, expr: str, start: Timestamp, end: Timestamp, step: timedelta | float
    ) -> RangeResult:
        """Evaluate ``expr`` from ``start`` to ``end`` every ``step`` (seconds or a timedelta)."""
        step_s = step.total_seconds() if isinstance(step, timedelta) else float(step)
        if not step_s > 0 or not math.isfinite(step_s):
            raise ValueError(f"step must be a positive duration, not {step!r}")
        params = {"query": expr, "start": _unix(start), "end": _unix(end), "step": f"{step_s:g}"}
        data, warnings = await self._get("/query_range", params)
        if data.get("resultType") != "matrix":
            raise self._garbage(f"query_range answered resultType {data.get('resultType')!r}")
        try:
            series = [_series(item, warnings) for item in _items(data, self.backend)]
        except (ValueError, TypeError, KeyError) as exc:
            raise self._garbage(f"/query_range answered a malformed result ({exc})") from None
        return RangeResult(series=series, warnings=warnings)

    async def _get(self, path: str, params: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
        if self._query_timeout_s is not None:
            params["timeout"] = f"{self._query_timeout_s:.3f}"

        async def call() -> Any:
            return await request_json(self._client, self.backend, "GET", API + path, params=params)

        body = await with_retries(call, self._retries)
        if not isinstance(body, dict) or body.get("status") != "success":
            raise self._garbage(f"{path} did not answer a success envelope")
        data = body.get("data")
        if not isinstance(data, dict):
            raise self._garbage(f"{path} answered no data object")
        warnings = [str(w) for w in body.get("warnings") or []]
        if body.get("isPartial") is True:
            warnings.append("partial response: some storage nodes did not answer")
        return data, warnings

    async def build_info(self) -> dict[str, Any]:
        """``/api/v1/status/buildinfo``: ``version``, ``revision``... (Prometheus; other
        engines may answer 404)."""
        data, _ = await self._get("/status/buildinfo", {})
        return data

    async def loaded_rules(self) -> LoadedRules:
        """The alerting and recording rules the engine (or the ruler behind it) evaluates."""
        data, _ = await self._get("/rules", {})
        groups = data.get("groups")
        if not isinstance(groups, list):
            raise self._garbage("/rules answered no list of groups")
        alerts: set[str] = set()
        records: set[str] = set()
        for group in groups:
            for rule in group.get("rules") or [] if isinstance(group, dict) else []:
                if isinstance(rule, dict) and isinstance(rule.get("name"), str):
                    kind = alerts if rule.get("type") == "alerting" else records
                    kind.add(rule["name"])
        return LoadedRules(alerts=frozenset(alerts), records=frozenset(records))

    async def metric_names(self, pattern: str) -> frozenset[str]:
        """Names of the series matching the regex ``pattern`` now (one instant query)."""
        result = await self.query(f'group by (__name__) ({{__name__=~"{pattern}"}})')
        return frozenset(s.metric.get("__name__", "") for s in result.samples) - {""}

    async def announced_metrics(self) -> frozenset[str]:
        """Metric families the scraped targets announce (``/api/v1/metadata``: their HELP
        and TYPE lines), also those without a sample yet. Engines without it answer 404."""
        data, _ = await self._get("/metadata", {})
        return frozenset(str(name) for name in data)

    def _garbage(self, what: str) -> BackendResponseError:
        return BackendResponseError(f"{self.backend}: {what}", self.backend)


def _unix(t: Timestamp) -> str:
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise ValueError("query times must be timezone-aware datetimes (or Unix seconds)")
        return f"{t.timestamp():.3f}"
    return f"{float(t):.3f}"


def _instant(data: dict[str, Any], warnings: list[str], backend: str) -> QueryResult:
    kind = data.get("resultType")
    raw = data.get("result")
    if kind == "vector":
        samples = [s for s in (_sample(item, warnings) for item in _items(data, backend)) if s]
        return QueryResult(result_type="vector", samples=samples, warnings=warnings)
    if kind == "matrix":
        series = [_series(item, warnings) for item in _items(data, backend)]
        return QueryResult(result_type="matrix", series=series, warnings=warnings)
    if kind == "scalar" and isinstance(raw, list) and len(raw) == 2:
        sample = Sample(metric={}, timestamp=float(raw[0]), value=float(raw[1]))
        return QueryResult(result_type="scalar", samples=[sample], warnings=warnings)
    if kind == "string" and isinstance(raw, list) and len(raw) == 2:
        return QueryResult(result_type="string", text=str(raw[1]), warnings=warnings)
    raise BackendResponseError(f"{backend}: unexpected result of type {kind!r}", backend)


def _items(data: dict[str, Any], backend: str) -> list[dict[str, Any]]:
    raw = data.get("result")
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise BackendResponseError(f"{backend}: result is not a list of series", backend)
    return raw


def _sample(item: dict[str, Any], warnings: list[str]) -> Sample | None:
    if "value" not in item:
        _native_histogram(item, warnings)
        return None
    ts, value = item["value"]
    return Sample(metric=item.get("metric") or {}, timestamp=float(ts), value=float(value))


def _series(item: dict[str, Any], warnings: list[str]) -> Series:
    if "values" not in item:
        _native_histogram(item, warnings)
    points = [(float(ts), float(v)) for ts, v in item.get("values") or []]
    return Series(metric=item.get("metric") or {}, points=points)


def _native_histogram(item: dict[str, Any], warnings: list[str]) -> None:
    note = "native histogram samples are not supported and were left out"
    if ("histogram" in item or "histograms" in item) and note not in warnings:
        warnings.append(note)


def _api_error_hook(backend: str) -> Callable[[httpx.Response], Coroutine[Any, Any, None]]:
    """Turn the API's JSON error envelope into a BackendResponseError with its full text
    (``request_json`` keeps 200 characters, which for VictoriaMetrics is only the query)."""

    async def hook(response: httpx.Response) -> None:
        if response.status_code < 400 or response.status_code in (401, 403):
            return  # a refusal of the credentials is request_json's BackendAuthError
        await response.aread()
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return  # not the API's envelope: request_json reports it
        if not isinstance(body, dict) or "error" not in body:
            return
        url = redact_url(str(response.request.url.copy_with(query=None)))
        where = f"{backend} {response.request.method} {url}"
        kind = body.get("errorType") or "error"
        full = str(body["error"])
        if len(full) > ERROR_TEXT_CHARS:  # the cause comes last, after the query's echo
            keep = ERROR_TEXT_CHARS // 4
            full = f"{full[:keep]} … {full[-(ERROR_TEXT_CHARS - keep) :]}"
        text = redact_urls_in(full)
        over_limit = SERIES_LIMIT.search(str(body["error"])) is not None
        error = (SeriesLimitError if over_limit else BackendResponseError)(
            f"{where}: HTTP {response.status_code} {kind}: {text}", backend, response.status_code
        )
        if kind in ("timeout", "canceled"):
            error.retryable = False  # the same query would take as long again
        raise error

    return hook


class _LimitedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int, backend: str, url: str) -> None:
        self._inner, self._limit, self._backend, self._url = inner, limit, backend, url

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise _too_big(self._backend, self._url, self._limit)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _LimitedTransport(httpx.AsyncBaseTransport):
    """Stops reading a body once it passes ``limit`` bytes on the wire, so a careless range
    query fails fast instead of filling memory (``request_json`` also caps the decoded body)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int, backend: str) -> None:
        self._inner, self._limit, self._backend = inner, limit, backend

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        url = redact_url(str(request.url.copy_with(query=None)))
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self._limit:
            await response.aclose()
            raise _too_big(self._backend, url, self._limit)
        if not isinstance(response.stream, httpx.AsyncByteStream):
            return response
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_LimitedStream(response.stream, self._limit, self._backend, url),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def _too_big(backend: str, url: str, limit: int) -> BackendResponseError:
    return BackendResponseError(
        f"{backend} GET {url}: response over the {limit}-byte limit; narrow the query "
        "(fewer series, a shorter range or a larger step)",
        backend,
    )


__all__ = [
    "LoadedRules",
    "PrometheusClient",
    "QueryResult",
    "RangeResult",
    "Sample",
    "Series",
    "Timestamp",
]
