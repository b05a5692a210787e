"""Newest-first scans of day-partitioned JSON-lines files: the gateway's sample store
(``dt=YYYY-MM-DD/``) and its span files (``traces-YYYY-MM-DD.jsonl``) share this.

Files are read day by day, newest first, and reading stops as soon as the newest ``limit``
matches, and whether there are more, are known. A vanished file (retention) is passed over; an
unreadable one is an ``AdapterError`` naming it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as clock
from pathlib import Path
from typing import Generic, TypeVar

from console.errors import AdapterError, ConsoleError

MAX_LIMIT = 10_000
T = TypeVar("T")


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
            lines = read_lines(file, backend)
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


def read_lines(path: Path, backend: str) -> Iterator[str] | None:
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
