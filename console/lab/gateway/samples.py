"""The sample store: flagged inputs (and a seeded random fraction of the rest) as JSON lines,
``<root>/dt=YYYY-MM-DD/samples-<pid>.jsonl``, with their provenance.

Inputs may be personal data: ``hash_only`` keeps only their sha256, and partitions older than
``retention_days`` are deleted at start and then daily (by the writer thread).
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from console.lab.gateway.sinks import JsonlSink

log = logging.getLogger(__name__)

PARTITION_PREFIX = "dt="


@dataclass(frozen=True)
class Sample:
    sample_id: str
    time: str
    client: str
    model: str
    version: str
    detector_score: float
    extraction_score: float
    prediction: int
    confidence: float
    flagged: bool
    trace_id: str
    input_sha256: str
    input: list[float] | None


class SampleStore:
    def __init__(
        self,
        root: Path,
        sink: JsonlSink,
        *,
        fraction: float,
        hash_only: bool,
        retention_days: int,
        seed: int = 0,
    ) -> None:
        self.root = root
        self._sink = sink
        self._fraction = fraction
        self._hash_only = hash_only
        self._retention_days = retention_days
        self._rng = random.Random(seed)
        self._pid = os.getpid()

    def wanted(self, flagged: bool) -> bool:
        """Whether a row is stored: always when flagged, else with probability ``fraction``."""
        return flagged or (self._fraction > 0 and self._rng.random() < self._fraction)

    def new_id(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"

    def write(self, sample: Sample) -> None:
        record = dict(vars(sample))  # not asdict(): it deep-copies the 64 input values
        if self._hash_only:
            record.pop("input")
        when = datetime.fromisoformat(sample.time)
        path = self.root / f"{PARTITION_PREFIX}{when:%Y-%m-%d}" / f"samples-{self._pid}.jsonl"
        self._sink.put(path, json.dumps(record, separators=(",", ":")))

    def expire(self, today: date | None = None) -> list[Path]:
        """Delete partitions older than the retention period; return what was deleted."""
        today = today or datetime.now(UTC).date()
        oldest_kept = today - timedelta(days=self._retention_days)
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for entry in self.root.iterdir():
            if not entry.is_dir() or not entry.name.startswith(PARTITION_PREFIX):
                continue
            try:
                day = date.fromisoformat(entry.name[len(PARTITION_PREFIX) :])
            except ValueError:
                continue  # not ours: never delete what we cannot date
            if day < oldest_kept:
                shutil.rmtree(entry)
                removed.append(entry)
        if removed:
            log.info("sample store: deleted %d partition(s) past retention", len(removed))
        return removed
