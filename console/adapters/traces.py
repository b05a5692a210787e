"""Spans as OTLP JSON: the gateway's span files and the trace stores that hold them.

``read_spans`` reads ``<traces.path>/traces-YYYY-MM-DD.jsonl`` (one OTLP
``ExportTraceServiceRequest`` per line, the Collector file exporter's format, a file per UTC day
of the span's end) with the sample reader's rules: synchronous, newest day first, only days
that can overlap the window, torn or garbage lines skipped and counted. Spans are assumed to
last less than a day.

``TraceQueryClient`` fetches one trace from Tempo (``GET /api/traces/{id}``: OTLP JSON under
``batches``, ids in base64, as Tempo marshals them) or Jaeger v2 (``GET /api/v3/traces/{id}``:
``{"result": {"resourceSpans": [...]}}``, ids in hex). ``parse_otlp_json`` accepts both id
encodings and both spellings (``resourceSpans``/``batches``, ``scopeSpans``/
``instrumentationLibrarySpans``). Neither Tempo nor Jaeger can be installed on the development
machine (no Debian packages, no network downloads), so the client is tested against a real
loopback HTTP server that serves the real gateway's span lines in both shapes, plus 404, 500
and garbage answers.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx

from console.adapters.day_files import check_window, day_start, in_window, newest_matches
from console.adapters.http import make_client, request_json
from console.adapters.retry import with_retries
from console.endpoints import HttpClientOptions
from console.errors import AdapterError, BackendResponseError, ConfigError, ConsoleError

BACKEND = "span files"
STATUS_ERROR = 2

AttributeValue = str | int | float | bool

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_DAY_FILE = re.compile(r"traces-(\d{4}-\d{2}-\d{2})\.jsonl")


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    """32 lower-case hex characters."""
    span_id: str
    """16 lower-case hex characters."""
    parent_span_id: str | None
    name: str
    start: datetime
    """Aware, UTC."""
    duration_ms: float
    attributes: dict[str, AttributeValue]
    error: bool
    """Status code ERROR."""
    service: str | None
    """Resource attribute ``service.name``."""


@dataclass(frozen=True)
class SpanFilter:
    """What to read. Attributes are the gateway's (``aml.client``, ``aml.model``,
    ``aml.outcome``); ``since`` (inclusive) and ``until`` (exclusive) apply to the start."""

    trace_ids: frozenset[str] | None = None
    client: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None
    limit: int = 200

    def __post_init__(self) -> None:
        check_window(self.since, self.until, self.limit, "span filter")
        if self.trace_ids is not None:
            object.__setattr__(self, "trace_ids", frozenset(t.lower() for t in self.trace_ids))

    def matches(self, span: SpanRecord) -> bool:
        attrs = span.attributes
        return (
            (self.trace_ids is None or span.trace_id in self.trace_ids)
            and (self.client is None or attrs.get("aml.client") == self.client)
            and (self.model is None or attrs.get("aml.model") == self.model)
            and (self.outcome is None or attrs.get("aml.outcome") == self.outcome)
            and in_window(span.start, self.since, self.until)
        )


@dataclass(frozen=True)
class SpanBatch:
    records: list[SpanRecord]
    """Newest start first, at most ``limit``."""
    skipped_lines: int
    files_read: int
    truncated: bool


def read_spans(path: Path, flt: SpanFilter) -> SpanBatch:
    """The newest spans under ``path`` that match ``flt``.

    Raises ConfigError if ``path`` is not a directory and AdapterError if a file that must be
    read cannot be; a missing ``path`` holds no spans.
    """

    def wanted(day: date) -> bool:
        start = day_start(day)
        # A file holds the spans that ended that day: they started at most a day before.
        return (flt.since is None or start + timedelta(days=1) > flt.since) and (
            flt.until is None or start - timedelta(days=1) < flt.until
        )

    scan = newest_matches(
        ((day, files) for day, files in _day_files(path) if wanted(day)),
        _parse_line,
        flt.matches,
        lambda s: s.start,
        flt.limit,
        BACKEND,
    )
    return SpanBatch(scan.records, scan.skipped_lines, scan.files_read, scan.truncated)


def parse_otlp_json(document: dict[str, Any], *, backend: str = "otlp") -> list[SpanRecord]:
    """The spans of an OTLP JSON ``TracesData``/``ExportTraceServiceRequest`` (or Tempo's
    ``{"batches": [...]}``). Raises BackendResponseError on anything else."""

    def bad(where: str, what: str) -> BackendResponseError:
        return BackendResponseError(f"{backend}: not OTLP JSON: {where}{what}", backend)

    if not isinstance(document, dict):
        raise bad("", f"a {type(document).__name__}, not an object")
    key = "resourceSpans" if "resourceSpans" in document else "batches"
    resource_spans = document.get(key)
    if not isinstance(resource_spans, list):
        raise bad("", "no resourceSpans (or batches) list")
    spans: list[SpanRecord] = []
    for i, rs in enumerate(resource_spans):
        where = f"{key}[{i}]"
        if not isinstance(rs, dict):
            raise bad(where, " is not an object")
        resource = rs.get("resource") or {}
        if not isinstance(resource, dict):
            raise bad(where, ".resource is not an object")
        try:
            service = _attributes(resource.get("attributes")).get("service.name")
        except ValueError as exc:
            raise bad(f"{where}.resource", f": {exc}") from None
        scope_key = "scopeSpans" if "scopeSpans" in rs else "instrumentationLibrarySpans"
        scopes = rs.get(scope_key)
        if scopes is None:
            scopes = []
        if not isinstance(scopes, list):
            raise bad(where, f".{scope_key} is not a list")
        for j, scope in enumerate(scopes):
            raw_spans = scope.get("spans") if isinstance(scope, dict) else None
            if not isinstance(raw_spans, list | None):
                raise bad(f"{where}.{scope_key}[{j}]", ".spans is not a list")
            for k, raw in enumerate(raw_spans or []):
                try:
                    spans.append(_span(raw, service if isinstance(service, str) else None))
                except ValueError as exc:
                    raise bad(f"{where}.{scope_key}[{j}].spans[{k}]", f": {exc}") from None
    return spans


Kind = Literal["tempo", "jaeger"]


class TraceQueryClient:
    """Fetches traces by id from Tempo or Jaeger. Close with ``aclose`` (or ``async with``)."""

    def __init__(
        self,
        kind: Kind,
        url: str,
        timeout_s: float,
        *,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        options: HttpClientOptions | None = None,
    ) -> None:
        """``options``: credentials, TLS and proxy (``[traces]``, when its path is a URL)."""
        if kind not in ("tempo", "jaeger"):
            raise ConfigError(f"trace store kind must be tempo or jaeger, not {kind!r}", "traces")
        self.kind = kind
        self.backend = kind
        self._retries = retries
        # Tempo answers protobuf unless asked for JSON.
        self._client = make_client(
            url,
            timeout_s,
            options=options,
            backend=kind,
            headers={"Accept": "application/json"},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> TraceQueryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get_trace(self, trace_id: str) -> list[SpanRecord]:
        """The spans of a trace, earliest start first; an unknown trace has none."""
        wanted = trace_id.strip().lower()
        if not _TRACE_ID.fullmatch(wanted) or set(wanted) == {"0"}:
            raise ConsoleError(
                f"not a trace id: {trace_id!r} (expected 32 hex characters)", self.backend
            )
        path = f"/api/traces/{wanted}" if self.kind == "tempo" else f"/api/v3/traces/{wanted}"

        async def call() -> Any:
            return await request_json(self._client, self.backend, "GET", path, allow_404=True)

        body = await with_retries(call, self._retries)
        if body is None:
            return []
        # Jaeger wraps in "result"; Tempo's /api/v2 in "trace".
        for wrapper in ("result", "trace"):
            if isinstance(body, dict) and wrapper in body and len(body) == 1:
                body = body[wrapper]
        spans = parse_otlp_json(body, backend=self.backend)
        return sorted(spans, key=lambda s: s.start)


# Parsing ---------------------------------------------------------------------------------------


def _parse_line(line: str) -> list[SpanRecord]:
    try:
        document = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    try:
        return parse_otlp_json(document, backend=BACKEND)
    except AdapterError as exc:
        raise ValueError(str(exc)) from None


def _span(raw: object, service: str | None) -> SpanRecord:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    trace_id = _hex_id(raw.get("traceId"), 16, "traceId")
    span_id = _hex_id(raw.get("spanId"), 8, "spanId")
    start_ns = _nanos(raw.get("startTimeUnixNano"), "startTimeUnixNano")
    end_raw = raw.get("endTimeUnixNano")
    end_ns = start_ns if end_raw in (None, "", 0, "0") else _nanos(end_raw, "endTimeUnixNano")
    parent = raw.get("parentSpanId")
    status = raw.get("status") or {}
    if not isinstance(status, dict):
        raise ValueError("status is not an object")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise ValueError("name is not a string")
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=_hex_id(parent, 8, "parentSpanId") if parent else None,
        name=name,
        start=_utc(start_ns),
        duration_ms=max(0, end_ns - start_ns) / 1e6,
        attributes=_attributes(raw.get("attributes")),
        error=status.get("code") in (STATUS_ERROR, str(STATUS_ERROR), "STATUS_CODE_ERROR"),
        service=service,
    )


def _hex_id(value: object, size: int, key: str) -> str:
    """Lower-case hex of an id given in hex (the OTLP JSON rule) or base64 (Tempo)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"no {key}")
    if len(value) == 2 * size:
        try:
            return bytes.fromhex(value).hex()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise ValueError(f"{key} {value[:40]!r} is neither {size} bytes of hex nor of base64")
    return raw.hex()


def _nanos(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"no {key}")
    try:
        nanos = int(value)
    except ValueError:
        raise ValueError(f"{key} {value!r} is not an integer") from None
    if nanos < 0:
        raise ValueError(f"{key} is negative")
    return nanos


def _utc(nanos: int) -> datetime:
    seconds, rest = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)


def _attributes(raw: object) -> dict[str, AttributeValue]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ValueError("attributes is not a list")
    out: dict[str, AttributeValue] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise ValueError("an attribute has no key")
        value = _value(item.get("value"), item["key"])
        if value is not None:
            out[item["key"]] = value
    return out


def _value(raw: object, key: str) -> AttributeValue | None:
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"attribute {key}: value is not an object")
    if "stringValue" in raw:
        if not isinstance(raw["stringValue"], str):
            raise ValueError(f"attribute {key}: stringValue is not a string")
        return raw["stringValue"]
    if "boolValue" in raw:
        if not isinstance(raw["boolValue"], bool):
            raise ValueError(f"attribute {key}: boolValue is not a boolean")
        return raw["boolValue"]
    for field, kind in (("intValue", int), ("doubleValue", float)):
        # int64 arrive as strings in OTLP JSON; NaN and Infinity doubles too.
        if field in raw:
            value = raw[field]
            try:
                if isinstance(value, bool) or not isinstance(value, str | int | float):
                    raise ValueError
                if kind is int and isinstance(value, float):
                    raise ValueError
                return kind(value)
            except ValueError:
                raise ValueError(f"attribute {key}: {field} {value!r} is not valid") from None
    # arrayValue, kvlistValue, bytesValue: kept readable as their JSON text.
    return json.dumps(raw, separators=(",", ":"), sort_keys=True)


def _day_files(root: Path) -> list[tuple[date, Callable[[], list[Path]]]]:
    """``traces-<date>.jsonl`` files of ``root``, newest first."""
    if not root.exists():
        return []
    if not root.is_dir():
        raise ConfigError(f"span directory {root} is not a directory", BACKEND)
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AdapterError(
            f"{BACKEND}: cannot list {root}: {exc.strerror or exc}", BACKEND
        ) from None
    found: list[tuple[date, Path]] = []
    for entry in entries:
        match = _DAY_FILE.fullmatch(entry.name)
        if match is None:
            continue
        try:
            found.append((date.fromisoformat(match.group(1)), entry))
        except ValueError:
            continue
    found.sort(key=lambda item: item[0], reverse=True)
    return [(day, _single(entry)) for day, entry in found]


def _single(path: Path) -> Callable[[], list[Path]]:
    return lambda: [path]


__all__ = [
    "SpanBatch",
    "SpanFilter",
    "SpanRecord",
    "TraceQueryClient",
    "parse_otlp_json",
]
