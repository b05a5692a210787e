"""The audit log's file handling: regular files only, never a blocking open, atomic replaces.

Opening a FIFO for reading blocks until some writer opens it, so every path is checked with
``lstat`` first (a symlink is followed once, and its target must be regular too) and then
opened with ``O_NONBLOCK``, which cannot block, and checked again with ``fstat`` (the path may
have been swapped in between). ``O_NONBLOCK`` changes nothing for reads of a regular file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from pathlib import Path

from console.errors import AuditWriteError
from console.private_files import private_dir, write_private

SMALL_FILE_LIMIT = 64 * 1024
"""A checkpoint or witness is under 1 KiB; anything this big is not one."""


class NotRegularFile(Exception):
    """``str()`` is the tail of a sentence: ``<what> <path> is not a regular file (a FIFO)``."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path} is not a regular file ({kind})")
        self.path, self.kind = path, kind


def kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return name
    return "not a file"


def check_regular(path: Path) -> None:
    """Raise NotRegularFile unless ``path`` (or the one file its symlink names) is regular.

    FileNotFoundError (also for a dangling symlink) and other OSErrors propagate.
    """
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        target = os.stat(path).st_mode
        if not stat.S_ISREG(target):
            raise NotRegularFile(path, f"a symlink to {kind_of(target)}")
    elif not stat.S_ISREG(mode):
        raise NotRegularFile(path, kind_of(mode))


def open_regular(path: Path, flags: int = os.O_RDONLY) -> int:
    """A descriptor of the regular file at ``path``, opened without ever blocking."""
    check_regular(path)
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(path, kind_of(mode))
    return fd


def read_small(path: Path, limit: int = SMALL_FILE_LIMIT) -> bytes | None:
    """The whole of a small regular file, None if there is none.

    NotRegularFile for anything else; ValueError when it is over ``limit``; OSError otherwise.
    """
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"{path} is over {limit} bytes")
    return data


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each created one 0700 (an existing one,
    which may be shared, is left as it is)."""
    private_dir(directory, tighten=False)


def replace_file(target: Path, data: bytes, *, sync_dir: bool) -> None:
    """Temp file (0600), fsync, ``os.replace``: ``target`` is always a whole old or new file.

    ``sync_dir`` also fsyncs the directory, making the rename itself durable. OSError propagates
    (the temp file is removed).
    """
    make_private_dirs(target.parent)
    write_private(target, data)
    if sync_dir:
        fsync_dir(target.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flock_polling(fd: int, path: Path, timeout_s: float) -> None:
    """Take an exclusive ``flock``, polling: a stuck writer must not hang every runbook."""
    deadline = time.monotonic() + timeout_s
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise AuditWriteError(
                    f"audit log {path} is locked by another writer for over {timeout_s:g} s"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        except OSError as exc:
            raise AuditWriteError(f"cannot lock audit log {path}: {reason(exc)}") from None


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


__all__ = [
    "NotRegularFile",
    "check_regular",
    "flock_polling",
    "fsync_dir",
    "kind_of",
    "make_private_dirs",
    "open_regular",
    "read_small",
    "reason",
    "replace_file",
    "write_all",
]
