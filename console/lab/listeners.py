"""Which processes listen on a TCP port, as the kernel says (``/proc``), without a socket.

``/proc/net/tcp`` and ``tcp6`` list the listening sockets (state ``0A``) with their inodes;
``/proc/<pid>/fd/*`` links to ``socket:[inode]`` name their holders. Processes of other users
cannot be looked into: their sockets are reported as held by nobody known.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LISTEN = "0A"
TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


@dataclass(frozen=True)
class Listeners:
    port: int
    sockets: frozenset[int]
    """Inodes of the sockets listening on ``port`` (any local address, IPv4 or IPv6)."""
    holders: dict[int, frozenset[int]]
    """inode -> pids holding it; an inode missing here has no holder this process can see."""

    @property
    def unknown(self) -> frozenset[int]:
        """Listening sockets whose holder could not be seen (another user's process)."""
        return frozenset(s for s in self.sockets if not self.holders.get(s))

    @property
    def pids(self) -> frozenset[int]:
        return frozenset(pid for pids in self.holders.values() for pid in pids)


def listening_sockets(port: int) -> frozenset[int]:
    """Inodes of the TCP sockets in LISTEN on ``port``."""
    found: set[int] = set()
    for table in TABLES:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue  # no IPv6, or no /proc
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != LISTEN:
                continue
            local_port = fields[1].rsplit(":", 1)[-1]
            if int(local_port, 16) == port:
                found.add(int(fields[9]))
    return frozenset(found)


def socket_holders(inodes: frozenset[int]) -> dict[int, frozenset[int]]:
    """inode -> pids with a file descriptor on it, for the processes this one may look into."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    holders: dict[int, set[int]] = {}
    if not wanted:
        return {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = list(os.scandir(f"/proc/{entry.name}/fd"))
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            try:
                target = os.readlink(fd.path)
            except OSError:
                continue
            if target in wanted:
                holders.setdefault(wanted[target], set()).add(int(entry.name))
    return {inode: frozenset(pids) for inode, pids in holders.items()}


def listeners(port: int) -> Listeners:
    sockets = listening_sockets(port)
    return Listeners(port, sockets, socket_holders(sockets))


def working_dir(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() or "?"
    except OSError:
        return "?"


__all__ = [
    "Listeners",
    "command_name",
    "listeners",
    "listening_sockets",
    "socket_holders",
    "working_dir",
]
