"""Reader of the gateway's sample store (docs/architecture.md, "Lab gateway", **Samples**).

Layout: ``<root>/dt=YYYY-MM-DD/samples-<pid>.jsonl``, one JSON object per sampled row, the
partition named after the row's UTC date. The reader is synchronous (callers run it in a
thread), never raises on a bad line (a torn last line is normal while the gateway writes), and
reads partitions newest first, only those that can overlap the time window, stopping as soon as
the newest ``limit`` matches and whether there are more are known.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any, Generic, TypeVar

from console.errors import AdapterError, ConfigError, ConsoleError

BACKEND = "sample store"
MAX_LIMIT = 10_000
INPUT_SIZE = 64
SHADES = " ░▒▓█"
"""Pixel shades from 0 (blank) to 16 (full), for ``digit_rows``."""

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
            for line in _lines(file, BACKEND) or ():
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


def digit_rows(values: Sequence[float], side: int = 8) -> list[str]:
    """``side`` lines of shade characters drawing a ``side`` x ``side`` image of pixels in
    0..16 (clipped), two characters per pixel so it looks square in a terminal."""
    if side < 1:
        raise ValueError(f"side must be at least 1, not {side}")
    if len(values) != side * side:
        raise ValueError(f"expected {side * side} values ({side}x{side}), got {len(values)}")
    top = len(SHADES) - 1
    rows = []
    for r in range(side):
        chars = []
        for value in values[r * side : (r + 1) * side]:
            v = float(value)
            if math.isnan(v):
                raise ValueError("a pixel value is NaN")
            level = int(min(max(v, 0.0), 16.0) / 16.0 * top + 0.5)
            chars.append(SHADES[level] * 2)
        rows.append("".join(chars))
    return rows


# Shared with console.adapters.traces -----------------------------------------------------------


def check_window(since: datetime | None, until: datetime | None, limit: int, what: str) -> None:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.utcoffset() is None:
            raise ConsoleError(f"{what}: {name} must be a timezone-aware datetime", what)
    if since is not None and until is not None and since > until:
        raise ConsoleError(f"{what}: since ({since}) is after until ({until})", what)
    if not 1 <= limit <= MAX_LIMIT:
        raise ConsoleError(f"{what}: limit must be between 1 and {MAX_LIMIT}, not {limit}", what)


def in_window(when: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or when >= since) and (until is None or when < until)


def day_start(day: date) -> datetime:
    return datetime.combine(day, clock(), UTC)


@dataclass(frozen=True)
class Scan(Generic[T]):
    records: list[T]
    skipped_lines: int
    files_read: int
    truncated: bool


def newest_matches(
    days: Iterable[tuple[date, Callable[[], list[Path]]]],
    parse: Callable[[str], Sequence[T]],
    keep: Callable[[T], bool],
    when: Callable[[T], datetime],
    limit: int,
    backend: str,
) -> Scan[T]:
    """The ``limit`` newest kept records of day files, given newest day first.

    Every record in an earlier day's files is taken to be older than that day's end; a record
    may still be older than its own file's day (a span that ended after midnight). So reading
    stops once ``limit`` + 1 records are kept (``truncated`` is then known) and the ``limit``
    newest all fall on or after the start of the last day read. Memory holds ``limit`` + 1
    records. ``parse`` raises ValueError on a malformed line.
    """
    heap: list[tuple[datetime, int, T]] = []  # the limit + 1 newest so far, oldest on top
    seq = itertools.count()
    skipped = files_read = 0
    for day, list_files in days:
        for file in list_files():
            lines = _lines(file, backend)
            if lines is None:
                continue
            files_read += 1
            for line in lines:
                try:
                    records = parse(line)
                except ValueError:
                    skipped += 1
                    continue
                for record in records:
                    if not keep(record):
                        continue
                    item = (when(record), next(seq), record)
                    if len(heap) <= limit:
                        heapq.heappush(heap, item)
                    else:
                        heapq.heappushpop(heap, item)
        if len(heap) > limit and heapq.nsmallest(2, heap)[1][0] >= day_start(day):
            break
    ordered = sorted(heap, key=lambda item: (item[0], item[1]), reverse=True)
    return Scan([r for _, _, r in ordered[:limit]], skipped, files_read, len(heap) > limit)


def _lines(path: Path, backend: str) -> Iterator[str] | None:
    """The non-blank lines of ``path``; None if it vanished (retention deleted it)."""
    try:
        # errors="replace": a line torn inside a UTF-8 sequence becomes a skipped line.
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AdapterError(
            f"{backend}: cannot read {path}: {exc.strerror or exc}", backend
        ) from None

    def lines() -> Iterator[str]:
        with handle:
            try:
                for line in handle:
                    if line.strip():
                        yield line
            except OSError as exc:
                raise AdapterError(
                    f"{backend}: cannot read {path}: {exc.strerror or exc}", backend
                ) from None

    return lines()


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
    "digit_rows",
    "find_sample",
    "read_samples",
]
