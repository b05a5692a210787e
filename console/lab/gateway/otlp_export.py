"""Spans exported over OTLP/HTTP with the JSON encoding (``POST {endpoint}/v1/traces``, as the
OpenTelemetry Collector, Tempo and Jaeger v2 receive it), besides the JSON-lines files.

A daemon thread batches what ``put`` queues (at most ``max_batch`` spans or ``flush_s``
seconds) into one ``ExportTraceServiceRequest`` and sends it; a receiver that is down, slow or
refuses costs the batch (counted as dropped, logged at most once a minute), never a request's
latency. The files stay the record: the export is for a team's tracing backend.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger(__name__)

Record = dict[str, Any]
"""One ``ExportTraceServiceRequest`` as the span writer builds it (one resource, one span)."""


class OtlpHttpExporter:
    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 2.0,
        max_batch: int = 512,
        flush_s: float = 1.0,
        max_queue: int = 10_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.url = endpoint.rstrip("/") + "/v1/traces"
        self._timeout_s = timeout_s
        self._max_batch = max_batch
        self._flush_s = flush_s
        self._on_drop = on_drop
        self._queue: queue.Queue[Record | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self._started = False
        self._last_warning = 0.0
        self.exported = 0
        """Spans the receiver accepted (a 2xx answer)."""

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def put(self, record: Record) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._dropped(1, "queue full")

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued, then stop."""
        if not self._started:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _run(self) -> None:
        with httpx.Client(
            timeout=self._timeout_s, trust_env=False, follow_redirects=False
        ) as client:
            stopping = False
            while not stopping:
                batch, stopping = self._next_batch()
                if batch:
                    self._send(client, batch)

    def _next_batch(self) -> tuple[list[Record], bool]:
        batch: list[Record] = []
        deadline = time.monotonic() + self._flush_s
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _send(self, client: httpx.Client, batch: list[Record]) -> None:
        body = {"resourceSpans": [rs for record in batch for rs in record["resourceSpans"]]}
        try:
            response = client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            self._dropped(len(batch), f"{type(exc).__name__}: {exc}")
            return
        if response.is_success:
            self.exported += len(batch)
        else:
            self._dropped(len(batch), f"HTTP {response.status_code}")

    def _dropped(self, count: int, why: str) -> None:
        if self._on_drop is not None:
            self._on_drop(count)
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            log.warning(
                "OTLP export to %s failed (%s): %d span(s) dropped; the trace files "
                "still have them",
                self.url,
                why,
                count,
            )
