"""What every write of the lab passes first: read-only mode, then the target being a service
the lab's launcher started.

Writes: ``lab up`` and ``lab down`` (and ``demo``, which brings the lab up), every attack (the
CLI's and the drills'), benign traffic, and the seeding in ``lab up``. Each calls
``refuse_read_only`` before anything else; those that send to a service (attacks: the gateway,
or MLflow for poisoning; traffic: the gateway; seeding: MLflow) then call
``require_lab_service`` after the loopback check.

**Loopback is not enough**: ``kubectl port-forward svc/mlflow 15000:5000`` or ``ssh -L`` put a
production registry on 127.0.0.1. So the process listening on the URL's port is asked who it
is: it must belong to the process group of a live launcher record for that service. The
launcher starts each service in its own session (pgid = its pid) with its home
``<lab_dir>/<service>/`` as working directory, where its pid file (pid, start time, port)
lives; the record is found there. Consequences: a service another lab dir's launcher started
(the tests' shared lab) counts, a forwarder or a hand-started server never does, and a pid the
kernel handed to another program does not either (start time). Only ``/proc`` is read: no
socket is opened before the check passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from console.adapters import processes
from console.config import Settings
from console.errors import LabError, read_only_refusal
from console.lab import listeners, process
from console.lab.specs import service_port
from console.urls import redact_url


@dataclass(frozen=True)
class LabService:
    """A service the lab's launcher started, found listening on its port."""

    name: str
    home: Path
    record: process.PidRecord


def refuse_read_only(settings: Settings, what: str) -> None:
    """ReadOnlyError in read-only mode (``--read-only``, ``CONSOLE_READ_ONLY=1``, the config's
    ``read_only``); ``what`` names the write, e.g. ``"lab down"``."""
    if settings.read_only:
        raise read_only_refusal(what)


def require_lab_service(name: str, url: str) -> LabService:
    """The lab service ``name`` listening on ``url``'s port; LabError if nothing listens there
    or anything that does is not that service as its launcher started it."""
    port = service_port(name, url)
    where = f"{name} at {redact_url(url)}"
    found = listeners.listeners(port)
    if not found.sockets:
        raise LabError(
            f"{where}: nothing listens on port {port}; start it with `aml-console lab up -s {name}`"
        )
    if found.unknown:
        raise LabError(
            f"{where}: cannot see which process listens on port {port} (another user's?); the "
            "lab writes only to services its launcher started"
        )
    started = {pid: _launched(name, pid, port) for pid in sorted(found.pids)}
    strangers = [pid for pid, service in started.items() if service is None]
    if strangers:
        pid = strangers[0]
        raise LabError(
            f"{where}: port {port} is held by a process the lab did not start (pid {pid}, "
            f"{listeners.command_name(pid)}), e.g. a port-forward; the lab writes only to "
            f"services its launcher started (`aml-console lab up -s {name}`)"
        )
    services = [s for s in started.values() if s is not None]
    return services[0]


FRONTS = {"gateway": ("gateway", "nginx")}
"""Services that may hold another's port: with ``lab up --replicas``, the lab's NGINX serves
the gateway's URL (console.lab.replica_specs)."""


def _launched(name: str, pid: int, port: int) -> LabService | None:
    """The launcher's record of service ``name`` whose process group holds ``pid``, if any."""
    fields = processes.stat_fields(pid)
    if fields is None:
        return None
    group = int(fields[2])
    for home in (listeners.working_dir(group), listeners.working_dir(pid)):
        if home is None:
            continue
        for holder in FRONTS.get(name, (name,)):
            record = process.read_pid(home / f"{holder}.pid")  # ServiceSpec.pid_path
            if (
                record is not None
                and record.pid == group
                and record.port == port
                and process.is_alive(record)
            ):
                return LabService(name, home, record)
    return None


__all__ = ["LabService", "refuse_read_only", "require_lab_service"]
