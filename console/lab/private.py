"""The lab's state on disk, private to its user whatever the umask: directories 0700, files
0600 (pid files, logs, attack records, the services' settings, which carry backend URLs and
so their credentials, and the generated secrets).

A mode asked of ``mkdir``/``open`` is cut by the umask, and a file that exists keeps its mode,
so each is set explicitly (``chmod``/``fchmod``) after creation. Services the launcher starts
run with umask 077: what they create themselves (data, their own logs) is private too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o700
FILE_MODE = 0o600
SERVICE_UMASK = 0o077


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """``path`` as a directory, created (with any missing parents) 0700. ``tighten``: also
    chmod it 0700 if it already existed (the lab's own directories; not a shared one that
    merely holds a file of ours)."""
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            directory.mkdir(mode=DIR_MODE)
        os.chmod(directory, DIR_MODE)
    if tighten and not missing:
        os.chmod(path, DIR_MODE)
    return path


def open_private(path: Path, flags: int) -> int:
    """A file descriptor on ``path`` (``os.O_*`` ``flags``, created if absent) set to 0600."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_private(path: Path) -> BinaryIO:
    """``path`` opened for appending (a log), 0600."""
    return os.fdopen(open_private(path, os.O_WRONLY | os.O_APPEND), "ab")


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (a temporary file, then a rename), 0600: a
    reader sees the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "SERVICE_UMASK",
    "append_private",
    "open_private",
    "private_dir",
    "write_private",
]
