"""Files only their owner can read, whatever the umask: a run's state holds its lease token and
its evidence what the backends said, so files are 0600 and their folders 0700."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> None:
    """``path`` as a folder only its owner can enter (created if missing; missing parents get
    the usual mode). A folder someone else owns is left as it is."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    info = path.stat()
    if stat.S_IMODE(info.st_mode) != DIR_MODE:
        try:
            os.chmod(path, DIR_MODE)
        except PermissionError:
            if info.st_uid == os.geteuid():
                raise


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` atomically (temp file, fsync, rename) with mode 0600."""
    tmp = path.with_name(f"{path.name}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # a temp file left by a crash may have another mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
