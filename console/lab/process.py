"""Detached service processes: spawn in a new session, recognise by pid file, stop by group.

A pid file holds the pid and the process' start time (``/proc/<pid>/stat`` field 22), so a pid
the kernel has since handed to another program is never mistaken for the service.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from console.adapters import processes
from console.private_files import SERVICE_UMASK, append_private, write_private
from console.urls import redact_urls_in

# Popen objects of services this process started, so they can be reaped instead of lingering
# as zombies (the launcher may live as long as a test session).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int
    port: int


def start_ticks(pid: int) -> int | None:
    """Start time of a live process, after reaping it if it is a child of ours that exited (a
    zombie's pid would otherwise look alive to the launcher)."""
    _reap(pid)
    return processes.start_ticks(pid)


def is_alive(record: PidRecord) -> bool:
    return start_ticks(record.pid) == record.start_ticks


def read_pid(path: Path) -> PidRecord | None:
    try:
        data = json.loads(path.read_text())
        return PidRecord(
            pid=int(data["pid"]), start_ticks=int(data["start_ticks"]), port=int(data["port"])
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # A torn or foreign pid file says nothing reliable: treat the service as unknown.
        return PidRecord(pid=0, start_ticks=-1, port=0)


def write_pid(path: Path, record: PidRecord) -> None:
    """Replace the pid file atomically, mode 0600."""
    write_private(path, json.dumps(asdict(record)))


def spawn(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_path: Path) -> int:
    """Start ``argv`` in its own session (so its whole group can be signalled), its output
    appended to ``log_path`` (0600), with umask 077; return its pid."""
    with append_private(log_path) as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=SERVICE_UMASK,
        )
    _children[proc.pid] = proc
    return proc.pid


def exit_code(pid: int) -> int | None:
    """Exit status of a child this process started and that has exited, else None."""
    proc = _children.get(pid)
    return None if proc is None else proc.poll()


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None:
        proc.poll()


def stop(record: PidRecord, timeout_s: float = 10.0) -> None:
    """SIGTERM the service's process group, wait up to ``timeout_s``, then SIGKILL it."""
    pgid = record.pid
    if pgid <= 0:
        return
    ticks = start_ticks(pgid)
    if ticks is not None and ticks != record.start_ticks:
        return  # the pid now belongs to another program
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        if not processes.group_members(pgid):
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            _reap(pgid)
            if not processes.group_members(pgid):
                break
            time.sleep(0.05)
    _reap(pgid)
    _children.pop(pgid, None)


def port_open(port: int, timeout_s: float = 0.3) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 8, width: int = 240) -> str:
    """The last lines of a log, joined on one line (errors are shown on one line), URLs
    without their credentials."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    tail = [ln.strip()[:width] for ln in text.splitlines() if ln.strip()][-lines:]
    # A service may log the URLs it was given (vmalert's -datasource.url, ...).
    return redact_urls_in(" | ".join(tail)) if tail else "(empty log)"
