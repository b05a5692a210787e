"""Append-only JSON-lines files written by a background thread, so the event loop never waits
on the disk. A full queue drops records (counted) rather than slowing requests down. Files are
0600 and their directories 0700: spans and samples hold client ids and their inputs."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from console.private_files import append_private_text, private_dir

log = logging.getLogger(__name__)

Item = tuple[Path, str] | None
"""A line for a file, or None: write what is queued, then stop."""


class JsonlSink:
    """Appends ``(path, line)`` items to their files on a daemon thread.

    Files stay open between writes (one per path; a new day's file closes the old ones) and are
    flushed after each batch, so a reader sees a record within ``flush_s`` of its request.
    """

    def __init__(
        self,
        name: str,
        *,
        max_queue: int = 10_000,
        flush_s: float = 0.1,
        on_drop: Callable[[], None] | None = None,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_s: float = 86_400.0,
        root: Path | None = None,
    ) -> None:
        """``root``: the directory the files go under; it and what the sink creates below it
        are made owner-only (spans and samples hold client ids and inputs)."""
        self._root = root
        self._queue: queue.Queue[Item] = queue.Queue(maxsize=max_queue)
        self._flush_s = flush_s
        self._on_drop = on_drop
        self._housekeeping = housekeeping
        self._housekeeping_s = housekeeping_s
        self._files: dict[Path, IO[str]] = {}
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def put(self, path: Path, line: str) -> None:
        try:
            self._queue.put_nowait((path, line))
        except queue.Full:
            if self._on_drop is not None:
                self._on_drop()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued, then stop the thread."""
        if not self._started:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning("sink queue still full at shutdown; records dropped")
            return
        self._thread.join(timeout_s)

    def _run(self) -> None:
        next_housekeeping = time.monotonic()
        while True:
            if self._housekeeping is not None and time.monotonic() >= next_housekeeping:
                next_housekeeping = time.monotonic() + self._housekeeping_s
                self._safely(self._housekeeping)
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < 1000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is None for item in batch)
            self._write([item for item in batch if item is not None])
            if stop:
                self._close_files()
                return

    def _write(self, items: list[tuple[Path, str]]) -> None:
        touched: set[Path] = set()
        for item in items:
            path, line = item
            try:
                handle = self._open(path)
                handle.write(line)
                handle.write("\n")
                touched.add(path)
            except OSError as exc:
                log.error("cannot write %s: %s", path, exc)
                if self._on_drop is not None:
                    self._on_drop()
        for path in touched:
            still_open = self._files.get(path)
            if still_open is None:
                continue  # closed (hence flushed) when the batch moved on to a newer file
            try:
                still_open.flush()
            except OSError as exc:
                log.error("cannot flush %s: %s", path, exc)

    def _open(self, path: Path) -> IO[str]:
        handle = self._files.get(path)
        if handle is None:
            # A new file (a new day) means the others are done: do not hold handles forever.
            self._close_files()
            if self._root is not None:
                private_dir(self._root)  # made, or tightened if an older run left it 0755
            private_dir(path.parent)
            handle = append_private_text(path)
            self._files[path] = handle
        return handle

    def _close_files(self) -> None:
        for handle in self._files.values():
            try:
                handle.close()
            except OSError as exc:
                log.error("cannot close %s: %s", handle.name, exc)
        self._files.clear()

    @staticmethod
    def _safely(task: Callable[[], None]) -> None:
        try:
            task()
        except OSError as exc:
            log.error("sink housekeeping failed: %s", exc)
