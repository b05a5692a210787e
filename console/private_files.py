"""Files that hold state or secrets, private to their user whatever the umask: directories
0700, files 0600 (run state with its lease tokens, evidence, the lab's pid files, logs and
settings, which carry backend URLs and so their credentials, spans and samples, which carry
client ids and inputs, and the generated secrets).

A mode asked of ``mkdir``/``open`` is cut by the umask, and a file that exists keeps its mode,
so each is set explicitly (``chmod``/``fchmod``) after creation. Services the lab's launcher
starts run with ``SERVICE_UMASK``: what they create themselves is private too.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO, TextIO

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SERVICE_UMASK = 0o077


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """``path`` as a directory, created (with any missing parents) 0700. ``tighten``: also
    make it 0700 if it existed with another mode (not when it is someone else's)."""
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            directory.mkdir(mode=PRIVATE_DIR)
        os.chmod(directory, PRIVATE_DIR)
    if tighten and not missing:
        info = path.stat()
        if stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
            try:
                os.chmod(path, PRIVATE_DIR)
            except PermissionError:
                if info.st_uid == os.geteuid():
                    raise
    return path


def open_private(path: Path, flags: int) -> int:
    """A file descriptor on ``path`` (``os.O_*`` ``flags``, created if absent) set to 0600."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_private(path: Path) -> BinaryIO:
    """``path`` opened for appending bytes (a log), 0600."""
    return os.fdopen(open_private(path, os.O_WRONLY | os.O_APPEND), "ab")


def append_private_text(path: Path) -> TextIO:
    """``path`` opened for appending UTF-8 text (JSON lines), 0600."""
    return os.fdopen(open_private(path, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")


def write_private(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` atomically (a temporary file, fsync, a rename), 0600: a
    reader sees the old file or the new one, never a torn one. The temporary file is never
    a symlink's target."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
