"""Samples view: the sampled (flagged, and a fraction of all) inputs from the gateway's sample
store, newest first, with provenance; and the span of a sample's request from the traces."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from console.adapters.backends import Backends
from console.adapters.samples import SampleFilter, SampleRecord, read_samples
from console.adapters.traces import SpanFilter, SpanRecord, read_spans
from console.errors import ConsoleError

LIMIT = 200


@dataclass(frozen=True)
class SamplesSnapshot:
    records: list[SampleRecord]
    skipped_lines: int
    truncated: bool


def local_path(location: str, what: str) -> Path:
    if "://" in location:
        raise ConsoleError(f"{what} at {location} is not a local directory: not readable here")
    return Path(location)


async def fetch_samples(
    backends: Backends,
    client: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
) -> SamplesSnapshot:
    path = local_path(backends.settings.samples.path, "sample store")
    flt = SampleFilter(client=client, model=model, since=since, limit=LIMIT)
    batch = await asyncio.to_thread(read_samples, path, flt)
    return SamplesSnapshot(batch.records, batch.skipped_lines, batch.truncated)


async def fetch_trace(backends: Backends, trace_id: str) -> list[SpanRecord]:
    """A trace's spans, from the trace files or, when ``traces.path`` is a URL, from Tempo or
    Jaeger (``traces.query_api``) with the section's credentials."""
    if "://" in backends.settings.traces.path:
        return await backends.trace_store.get_trace(trace_id)
    path = local_path(backends.settings.traces.path, "traces")
    flt = SpanFilter(trace_ids=frozenset({trace_id}), limit=50)
    return (await asyncio.to_thread(read_spans, path, flt)).records
