"""Reader of the gateway's sample store (docs/architecture.md, "Lab gateway", **Samples**).

Layout: ``<root>/dt=YYYY-MM-DD/samples-<pid>.jsonl``, one JSON object per sampled row, the
partition named after the row's UTC date. The reader is synchronous (callers run it in a
thread), never raises on a bad line (a torn last line is normal while the gateway writes), and
reads partitions newest first, only those that can overlap the time window, stopping as soon as
the newest ``limit`` matches and whether there are more are known.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from console.adapters.day_files import (
    check_window,
    day_start,
    in_window,
    newest_matches,
    read_lines,
)
from console.errors import AdapterError, ConfigError

BACKEND = "sample store"
INPUT_SIZE = 64

_PARTITION = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")
_PLAIN_NUMBERS = {int, float}
"""JSON numbers as ``json.loads`` makes them (``bool`` is a type of its own, so it is out)."""

T = TypeVar("T")


@dataclass(frozen=True)
class SampleRecord:
    """One sampled input row and its provenance."""

    sample_id: str
    time: datetime
    """Aware, UTC."""
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
    input: tuple[float, ...] | None
    """The 64 pixel values (0..16); None when the store keeps hashes only."""
    label: int | None = None
    """The input's true class, when whoever wrote the record knew it (a labelled attack suite
    or red-team set); the gateway never knows it and never writes it."""


@dataclass(frozen=True)
class SampleFilter:
    """What to read. ``since`` is inclusive, ``until`` exclusive; both aware datetimes."""

    client: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_score: float | None = None
    """Lowest ``detector_score`` kept."""
    flagged_only: bool = False
    trace_ids: frozenset[str] | None = None
    limit: int = 200

    def __post_init__(self) -> None:
        check_window(self.since, self.until, self.limit, "sample filter")
        if self.trace_ids is not None:
            object.__setattr__(self, "trace_ids", frozenset(t.lower() for t in self.trace_ids))

    def matches(self, record: SampleRecord) -> bool:
        return (
            (self.client is None or record.client == self.client)
            and (self.model is None or record.model == self.model)
            and (not self.flagged_only or record.flagged)
            and (self.min_score is None or record.detector_score >= self.min_score)
            and (self.trace_ids is None or record.trace_id in self.trace_ids)
            and in_window(record.time, self.since, self.until)
        )


@dataclass(frozen=True)
class SampleBatch:
    records: list[SampleRecord]
    """Newest first, at most ``limit``."""
    skipped_lines: int
    """Malformed or torn lines ignored."""
    files_read: int
    truncated: bool
    """More records matched than ``limit``."""


def read_samples(path: Path, flt: SampleFilter) -> SampleBatch:
    """The newest records under ``path`` that match ``flt``.

    Raises ConfigError if ``path`` is not a directory and AdapterError if a partition that must
    be read cannot be; a missing ``path`` is an empty store.
    """

    def wanted(day: date) -> bool:
        start = day_start(day)
        return (flt.since is None or start + timedelta(days=1) > flt.since) and (
            flt.until is None or start < flt.until
        )

    scan = newest_matches(
        ((day, files) for day, files in _partitions(path) if wanted(day)),
        _parse_line,
        flt.matches,
        lambda r: r.time,
        flt.limit,
        BACKEND,
    )
    return SampleBatch(scan.records, scan.skipped_lines, scan.files_read, scan.truncated)


def find_sample(path: Path, sample_id: str) -> SampleRecord | None:
    """The record with ``sample_id`` (newest partitions first), or None."""
    # A cheap substring test skips parsing lines that cannot match; only safe for ids that
    # json.dumps writes unescaped.
    plain = sample_id.isascii() and sample_id.isprintable() and not set(sample_id) & {'"', "\\"}
    for _day, list_files in _partitions(path):
        for file in list_files():
            for line in read_lines(file, BACKEND) or ():
                if plain and sample_id not in line:
                    continue
                try:
                    records = _parse_line(line)
                except ValueError:
                    continue
                for record in records:
                    if record.sample_id == sample_id:
                        return record
    return None


def _partitions(root: Path) -> list[tuple[date, Callable[[], list[Path]]]]:
    """``dt=<date>`` directories of ``root``, newest first, each with a lister of its files."""
    if not root.exists():
        return []
    if not root.is_dir():
        raise ConfigError(f"sample store {root} is not a directory", BACKEND)
    found = []
    for entry in _listing(root):
        match = _PARTITION.fullmatch(entry.name)
        if match is None or not entry.is_dir():
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        found.append((day, entry))
    found.sort(key=lambda item: item[0], reverse=True)
    return [(day, _lister(entry)) for day, entry in found]


def _lister(partition: Path) -> Callable[[], list[Path]]:
    def files() -> list[Path]:
        entries = _listing(partition)
        return sorted(e for e in entries if e.name.startswith("samples-") and e.suffix == ".jsonl")

    return files


def _listing(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except FileNotFoundError:  # deleted by retention since it was seen
        return []
    except OSError as exc:
        raise AdapterError(
            f"{BACKEND}: cannot list {directory}: {exc.strerror or exc}", BACKEND
        ) from None


def _parse_line(line: str) -> tuple[SampleRecord]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return (_record(obj),)


def _record(obj: dict[str, Any]) -> SampleRecord:
    raw_input = obj.get("input")
    values: tuple[float, ...] | None = None
    if raw_input is not None:
        # One C-level pass over the types (not _number per value): a replay reads 10,000
        # rows of 64, where the per-value check cost more than the JSON decoding.
        if (
            not isinstance(raw_input, list)
            or len(raw_input) != INPUT_SIZE
            or not set(map(type, raw_input)) <= _PLAIN_NUMBERS
        ):
            raise ValueError(f"input is not a list of {INPUT_SIZE} numbers")
        values = tuple(map(float, raw_input))
    prediction = obj.get("prediction")
    if not isinstance(prediction, int) or isinstance(prediction, bool):
        raise ValueError("prediction is not an integer")
    flagged = obj.get("flagged")
    if not isinstance(flagged, bool):
        raise ValueError("flagged is not a boolean")
    label = obj.get("label")
    if label is not None and (not isinstance(label, int) or isinstance(label, bool) or label < 0):
        raise ValueError("label is not a class number")
    return SampleRecord(
        sample_id=_text(obj, "sample_id"),
        time=_aware(_text(obj, "time")),
        client=_text(obj, "client"),
        model=_text(obj, "model"),
        version=_text(obj, "version"),
        detector_score=_number(obj.get("detector_score"), "detector_score"),
        extraction_score=_number(obj.get("extraction_score"), "extraction_score"),
        prediction=prediction,
        confidence=_number(obj.get("confidence"), "confidence"),
        flagged=flagged,
        trace_id=_text(obj, "trace_id"),
        input_sha256=_text(obj, "input_sha256"),
        input=values,
        label=label,
    )


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value


def _number(value: object, key: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{key} is not a number")
    return float(value)


def _aware(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    if when.utcoffset() is None:
        raise ValueError("time has no UTC offset")
    return when.astimezone(UTC)


__all__ = [
    "SampleBatch",
    "SampleFilter",
    "SampleRecord",
    "find_sample",
    "read_samples",
]
