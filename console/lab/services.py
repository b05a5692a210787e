"""The lab's service launcher: ``up``, ``down`` and ``status`` of Redis, MLflow, Alertmanager,
Prometheus (or VictoriaMetrics and vmalert), the gateway and its benign traffic on loopback,
with data, logs and pid files under ``<run_dir>/lab/<service>/`` (private: 0700 folders,
0600 files, services run with umask 077; ``console.private_files``).

``up`` is idempotent (a live service that answers is reused) and safe to call from several
processes at once (an ``flock`` on ``<lab_dir>/.lock``). Services outlive the caller: stop them
with ``down``. Both refuse in read-only mode (``console.lab.guard``).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from console.config import Settings
from console.errors import LabError
from console.lab import guard, process, replica_specs, scrape, specs
from console.lab.replica_specs import Replicas
from console.lab.seed import SeededModel, ensure_seed_model
from console.lab.specs import SERVICE_NAMES, ServiceSpec
from console.private_files import open_private, private_dir, write_private
from console.urls import redact_url

State = Literal["running", "stopped", "dead"]
NGINX, POLICY = replica_specs.NGINX, replica_specs.POLICY


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    url: str
    """As it may be shown: credentials cut out."""
    port: int
    pid: int | None
    state: State
    """running: pid alive and port answers; dead: pid file but process gone or silent."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabUp:
    services: list[ServiceStatus]
    seeded: SeededModel | None
    """The seed model, when MLflow was among the services and seeding was asked for."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "services": [s.as_dict() for s in self.services],
            "seeded": self.seeded.as_dict() if self.seeded else None,
        }


def resolve_names(names: Iterable[str] | None, default: Iterable[str]) -> list[str]:
    """Validated service names in start order; ``default`` when ``names`` is None or empty."""
    wanted = [n.strip() for n in (names or default) if n.strip()]
    unknown = sorted(set(wanted) - set(SERVICE_NAMES))
    if unknown:
        raise LabError(f"unknown service {', '.join(unknown)} (known: {', '.join(SERVICE_NAMES)})")
    return [n for n in SERVICE_NAMES if n in wanted]


def with_metrics_engine(names: Iterable[str], engine: str) -> list[str]:
    """``names`` with the query engine's services swapped for ``engine``'s (``--metrics``)."""
    if engine not in specs.METRICS_ENGINES:
        known = ", ".join(specs.METRICS_ENGINES)
        raise LabError(f"unknown metrics engine {engine!r} (known: {known})")
    engines = {n for group in specs.METRICS_ENGINES.values() for n in group}
    return [n for n in names if n not in engines] + list(specs.METRICS_ENGINES[engine])


@contextmanager
def lab_lock(settings: Settings) -> Iterator[None]:
    """Exclusive lock on the lab directory (flock: released if the holder dies). The lab
    directory is made private (0700) on the way."""
    lab_dir = private_dir(settings.lab_dir)
    fd = open_private(lab_dir / ".lock", os.O_WRONLY | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def ensure_audit_key(settings: Settings) -> Path | None:
    """Create the audit HMAC key file (32 random bytes, hex, mode 0600) if absent: the
    configured one, or ``<run_dir>/secrets/audit.key``. None when the key is given inline."""
    if settings.audit.hmac_key is not None:
        return None
    path = settings.audit_key_file
    if path.exists():
        return path
    # Its folder is made 0700 if the lab creates it, or if it is inside the run dir; a shared
    # folder that merely holds the key keeps its mode.
    inside = path.parent.resolve().is_relative_to(settings.run_dir.resolve())
    private_dir(path.parent, tighten=inside)
    try:
        fd = open_private(path, os.O_WRONLY | os.O_EXCL)
    except FileExistsError:  # another process created it first
        return path
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path


def up(
    settings: Settings,
    names: Iterable[str] | None = None,
    *,
    seed: bool = True,
    rules_dir: Path | None = None,
    replicas: int | None = None,
) -> LabUp:
    """Start the named services (default ``settings.lab.services``) and wait until they answer.

    ``replicas`` >= 2 runs the gateway as that many processes behind NGINX and the policy
    endpoint (``console.lab.replica_specs``); 1 is the single gateway; None keeps what the lab
    runs (the recorded replicas, else the single gateway).

    Raises ReadOnlyError in read-only mode; LabError, before starting anything, for an unknown
    service, a non-loopback URL, a missing binary or a port held by a process the lab did not
    start; afterwards, for a service that did not come up (with the last lines of its log), or
    an MLflow to seed that is not the one the launcher started.
    """
    guard.refuse_read_only(settings, "lab up")
    wanted = resolve_names(names, settings.lab.services)
    ensure_audit_key(settings)
    with lab_lock(settings):
        tier = _tier_for_up(settings, replicas, "gateway" in wanted)
        wanted = _expand(wanted, tier)
        service_specs = _build_all(settings, wanted, rules_dir, tier)
        to_start = [s for s in service_specs if not _reusable(s)]
        busy = [s for s in to_start if process.port_open(s.port)]
        if busy:
            raise LabError(
                "; ".join(
                    f"{s.name}: port {s.port} is in use by a process this lab did not start"
                    f" (no live pid in {s.pid_path})"
                    for s in busy
                )
            )
        # The gateway is ready once it serves the seed model: start it after seeding, and the
        # benign traffic once the gateway answers.
        stages = _late_stages(tier)
        late = {name for stage in stages for name in stage}
        _start_all([s for s in to_start if s.name not in late])
        seeded = None
        if seed and "mlflow" in wanted:
            guard.require_lab_service("mlflow", settings.mlflow.url)  # not a port-forward
            seeded = ensure_seed_model(settings)
            from console.lab.seed_eval import ensure_seed_evaluations  # numpy, on first use

            ensure_seed_evaluations(settings)
        if tier is not None and NGINX in wanted:
            replica_specs.record(settings, tier)
            # The gateway's port is NGINX's now: scraped there, /metrics is any replica's.
            scrape.unregister_target(settings, "gateway")
        for stage in stages:
            _start_all([s for s in to_start if s.name in stage])
    return LabUp(_statuses(settings, service_specs), seeded)


def down(settings: Settings, names: Iterable[str] | None = None) -> list[ServiceStatus]:
    """Stop the named services (default: all) by process group; remove their pid files."""
    guard.refuse_read_only(settings, "lab down")
    wanted = resolve_names(names, SERVICE_NAMES)
    with lab_lock(settings):
        tier = replica_specs.leftover(settings)
        # The single gateway too: whichever of the two the lab runs.
        stopping = [*wanted, *_expand(wanted, tier)] if tier else wanted
        service_specs = _build_all(settings, list(dict.fromkeys(stopping)), None, tier, False)
        with ThreadPoolExecutor(max_workers=max(1, len(service_specs))) as pool:
            list(pool.map(_stop, service_specs))
        if tier is not None and "gateway" in wanted:
            replica_specs.forget(settings)
    return status(settings, wanted)


def status(settings: Settings, names: Iterable[str] | None = None) -> list[ServiceStatus]:
    """State of the named services (default: all), probing them in parallel. In a lab with
    replicas, ``gateway`` stands for nginx, the policy endpoint and each replica."""
    wanted = resolve_names(names, SERVICE_NAMES)
    tier = replica_specs.recorded(settings)
    service_specs = _build_all(settings, _expand(wanted, tier), None, tier, False)
    return _statuses(settings, service_specs)


def recorded_replicas(settings: Settings) -> int:
    """How many gateway processes the lab runs (1: the single gateway)."""
    tier = replica_specs.recorded(settings)
    return tier.count if tier is not None else 1


def _statuses(settings: Settings, service_specs: list[ServiceSpec]) -> list[ServiceStatus]:
    with ThreadPoolExecutor(max_workers=max(1, len(service_specs))) as pool:
        return list(pool.map(_status, service_specs))


def _tier_for_up(settings: Settings, replicas: int | None, with_gateway: bool) -> Replicas | None:
    """The replicated tier ``lab up`` runs, None for the single gateway (see ``up``)."""
    kept = replica_specs.recorded(settings)
    if replicas is None:
        return kept
    if replicas == 1:
        if kept is not None:
            raise LabError(
                f"the lab runs {kept.count} gateway replicas behind nginx; stop them first for a"
                " single gateway (`aml-console lab down -s gateway`)"
            )
        return None
    if not with_gateway:
        raise LabError("--replicas needs the gateway among the services (-s ...,gateway)")
    single = specs.build(settings, "gateway", check=False)
    record = process.read_pid(single.pid_path)
    if record is not None and process.is_alive(record):
        raise LabError(
            "the lab's single gateway is running on the gateway's port; stop it first"
            " (`aml-console lab down -s gateway`), then `lab up --replicas N`"
        )
    return replica_specs.plan(settings, replicas)


def _expand(names: list[str], tier: Replicas | None) -> list[str]:
    """``names`` with ``gateway`` replaced by the tier's services when the lab has replicas."""
    if tier is None:
        return names
    return [n for name in names for n in (tier.names if name == "gateway" else [name])]


def _late_stages(tier: Replicas | None) -> list[list[str]]:
    """What starts after seeding, stage by stage, each once the previous one answers: the
    gateway (or the policy endpoint with the replicas, then NGINX), then benign traffic."""
    if tier is None:
        return [["gateway"], ["traffic"]]
    return [[POLICY, *tier.replica_names], [NGINX], ["traffic"]]


def _start_all(service_specs: list[ServiceSpec]) -> None:
    pids = {s.name: _start(s) for s in service_specs}
    with ThreadPoolExecutor(max_workers=max(1, len(service_specs))) as pool:
        problems = [p for p in pool.map(lambda s: _wait_ready(s, pids[s.name]), service_specs) if p]
    if problems:
        raise LabError("; ".join(problems))


def _build_all(
    settings: Settings,
    names: list[str],
    rules_dir: Path | None,
    tier: Replicas | None = None,
    check: bool = True,
) -> list[ServiceSpec]:
    """Specs of every service, or one LabError naming every problem (all missing binaries)."""
    built, problems = [], []
    tier_names = set(tier.names) if tier is not None else set()
    for name in names:
        try:
            if name in tier_names and tier is not None:
                built.append(replica_specs.build(settings, tier, name, check=check))
            else:
                built.append(specs.build(settings, name, rules_dir=rules_dir, check=check))
        except LabError as exc:
            problems.append(str(exc))
    if problems:
        raise LabError("; ".join(problems))
    return built


def _status(spec: ServiceSpec) -> ServiceStatus:
    record = process.read_pid(spec.pid_path)
    url = redact_url(spec.url)
    if record is None:
        return ServiceStatus(spec.name, url, spec.port, None, "stopped")
    running = process.is_alive(record) and spec.probe(1.0)
    pid = record.pid or None
    return ServiceStatus(spec.name, url, spec.port, pid, "running" if running else "dead")


def _reusable(spec: ServiceSpec) -> bool:
    """A live service that answers is kept; a dead or silent one is stopped for a restart."""
    record = process.read_pid(spec.pid_path)
    if record is None:
        return False
    if record.port == spec.port and process.is_alive(record) and spec.probe(1.0):
        return True
    _stop(spec)
    return False


def _start(spec: ServiceSpec) -> int:
    private_dir(spec.home)
    private_dir(spec.data_dir)
    for path, text in spec.files.items():  # configs; the gateway's settings carry backend URLs
        private_dir(path.parent)  # e.g. the scrape targets' folder
        write_private(path, text)
    try:
        pid = process.spawn(
            spec.argv, env=specs.child_env(spec), cwd=spec.home, log_path=spec.log_path
        )
    except OSError as exc:
        raise LabError(f"{spec.name}: cannot start {spec.argv[0]}: {exc.strerror}") from None
    ticks = process.start_ticks(pid)
    process.write_pid(spec.pid_path, process.PidRecord(pid, ticks or -1, spec.port))
    return pid


def _wait_ready(spec: ServiceSpec, pid: int) -> str | None:
    """None once the service answers; otherwise why not, with its log's last lines."""
    deadline = time.monotonic() + spec.start_timeout_s
    while True:
        code = process.exit_code(pid)
        if code is not None:
            reason = f"exited with status {code}"
            break
        if spec.probe(0.5):
            return None
        if time.monotonic() >= deadline:
            reason = f"did not answer within {spec.start_timeout_s:g} s"
            break
        time.sleep(0.1)
    _stop(spec)
    return f"{spec.name} {reason}; log {spec.log_path}: {process.log_tail(spec.log_path)}"


def _stop(spec: ServiceSpec) -> None:
    record = process.read_pid(spec.pid_path)
    if record is not None:
        process.stop(record)
        spec.pid_path.unlink(missing_ok=True)


__all__ = [
    "LabUp",
    "ServiceStatus",
    "down",
    "ensure_audit_key",
    "lab_lock",
    "recorded_replicas",
    "resolve_names",
    "status",
    "up",
    "with_metrics_engine",
]
