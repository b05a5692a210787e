"""What the Alerts view shows beside a selected alert: the spans of the alert's client (and
model) since shortly before the alert started, and the client's sampled inputs over the same
window, newest first. Both are read at once; either source failing is reported on its own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from console.adapters.backends import Backends
from console.adapters.samples import SampleFilter, SampleRecord, read_samples
from console.adapters.traces import SpanFilter, SpanRecord, read_spans
from console.errors import ConsoleError
from console.views.samples import local_path

LOOKBACK = timedelta(minutes=2)
"""How far before the alert's start to look: the alert fires a `for:` after the behaviour began."""
LIMIT = 8


@dataclass(frozen=True)
class Correlated:
    spans: list[SpanRecord]
    samples: list[SampleRecord]
    span_error: str | None = None
    sample_error: str | None = None


async def fetch_correlated(
    backends: Backends, client: str, model: str | None, started: datetime | None
) -> Correlated:
    since = started - LOOKBACK if started is not None else None

    def spans() -> list[SpanRecord]:
        path = local_path(backends.settings.traces.path, "traces")
        return read_spans(
            path, SpanFilter(client=client, model=model, since=since, limit=LIMIT)
        ).records

    def samples() -> list[SampleRecord]:
        path = local_path(backends.settings.samples.path, "sample store")
        return read_samples(
            path, SampleFilter(client=client, model=model, since=since, limit=LIMIT)
        ).records

    span_result, sample_result = await asyncio.gather(
        asyncio.to_thread(spans), asyncio.to_thread(samples), return_exceptions=True
    )
    return Correlated(
        spans=span_result if isinstance(span_result, list) else [],
        samples=sample_result if isinstance(sample_result, list) else [],
        span_error=_error(span_result),
        sample_error=_error(sample_result),
    )


def _error(result: object) -> str | None:
    if isinstance(result, ConsoleError):
        return str(result)
    if isinstance(result, BaseException):
        if not isinstance(result, Exception):
            raise result
        return f"{type(result).__name__}: {result}"
    return None
