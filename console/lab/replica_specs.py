"""``lab up --replicas N``: the gateway tier as N gateway processes behind a real NGINX.

Services, in place of the single ``gateway``:

- ``policy``: the policy decision endpoint, ``python -m console --config <its settings>
  policy serve --listen 127.0.0.1:<[lab] policy_port>``, over the same Redis policy store;
- ``gateway-1`` .. ``gateway-N``: the lab gateway, each on a loopback port of its own
  (``[lab] replica_base_port`` and the ports after it, or a free run chosen by ``lab up``),
  with ``gateway.policy_decided_upstream``: NGINX asked the endpoint already, and a budget
  counted twice would admit half of it;
- ``nginx``: listens on ``gateway.url``'s port, so clients, traffic, attacks and drills keep
  that URL; it asks ``policy`` before each request (``auth_request``) and load-balances the
  replicas.

How many replicas are up, on which ports, is kept in ``<lab_dir>/replicas.json`` (0600): ``lab
status`` and ``lab down`` without ``--replicas`` see them, and a later ``lab up`` without the
flag keeps them. A full ``lab down`` (or ``lab down -s gateway``) removes it.

The query engine scrapes each replica and the policy endpoint directly (a file_sd target each,
with a ``replica`` label), never through NGINX, which would hand ``/metrics`` to any replica.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.config import Settings
from console.errors import LabError
from console.lab import nginx, probes, process, resolved, scrape
from console.lab.specs import (
    GATEWAY_SECTIONS,
    GATEWAY_START_TIMEOUT_S,
    SERVICE_NAMES,
    ServiceSpec,
    require_loopback,
    service_port,
    service_url,
)
from console.private_files import private_dir, write_private

POLICY = "policy"
NGINX = "nginx"
REPLICA = re.compile(r"^gateway-([1-9][0-9]{0,2})$")
MAX_REPLICAS = 32
STATE_FILE = "replicas.json"
FREE_RUN_OFFSET = 20
"""Without ``[lab] replica_base_port``, free ports are looked for from the gateway's + this."""
POLICY_SECTIONS = ("redis", "policy_endpoint")
"""The settings the policy endpoint runs with."""
FROM_GATEWAY = {
    "cache_s": "policy_cache_s",
    "redis_failure_mode": "redis_failure_mode",
    "default_qpm": "default_qpm",
    "pseudonym_key": "pseudonym_key",
    "pseudonym_key_file": "pseudonym_key_file",
}
"""``[policy_endpoint]`` fields the lab's endpoint takes from ``[gateway]`` unless set: it
decides as the replicas would, and names a bearer key as they do."""
NGINX_READY = (200, 401)
"""NGINX's readiness: an answer through it. Without a client identity the policy endpoint
answers 401, which proves NGINX and the endpoint both serve."""


@dataclass(frozen=True)
class Replicas:
    """The replicated gateway tier of a lab: the replicas' ports, in order."""

    ports: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.ports)

    @property
    def replica_names(self) -> list[str]:
        return [replica_name(i) for i in range(1, self.count + 1)]

    @property
    def names(self) -> list[str]:
        """The tier's services as listed: nginx, the policy endpoint, each replica."""
        return [NGINX, POLICY, *self.replica_names]


def replica_name(index: int) -> str:
    return f"gateway-{index}"


def state_path(settings: Settings) -> Path:
    return settings.lab_dir / STATE_FILE


def recorded(settings: Settings) -> Replicas | None:
    """The replicas ``lab up --replicas`` recorded; None for a single-gateway lab."""
    path = state_path(settings)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ports = tuple(int(p) for p in data["ports"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise LabError(f"{path}: unreadable replica state; remove it after `lab down`") from None
    if not 2 <= len(ports) <= MAX_REPLICAS or not all(0 < p < 65536 for p in ports):
        raise LabError(f"{path}: invalid replica state; remove it after `lab down`")
    return Replicas(ports)


def record(settings: Settings, replicas: Replicas) -> None:
    private_dir(settings.lab_dir)
    write_private(state_path(settings), json.dumps({"ports": list(replicas.ports)}) + "\n")


def forget(settings: Settings) -> None:
    state_path(settings).unlink(missing_ok=True)
    for name in (POLICY, *(replica_name(i) for i in range(1, MAX_REPLICAS + 1))):
        scrape.unregister_target(settings, name)


def plan(settings: Settings, count: int) -> Replicas:
    """The tier of ``count`` replicas: the recorded one if it has that many, else ports from
    ``[lab] replica_base_port`` or the first free run. LabError for a count out of range or a
    port another lab service uses."""
    if not 2 <= count <= MAX_REPLICAS:
        raise LabError(f"--replicas must be 1 (a single gateway) or 2-{MAX_REPLICAS}, not {count}")
    kept = recorded(settings)
    if kept is not None:
        if kept.count == count:
            return kept
        raise LabError(
            f"the lab has {kept.count} gateway replicas; stop them first to run {count}"
            " (`aml-console lab down -s gateway`)"
        )
    taken = _lab_ports(settings)
    base = settings.lab.replica_base_port
    if base is not None:
        ports = tuple(range(base, base + count))
        clash = sorted(set(ports) & taken)
        if ports[-1] > 65535 or clash:
            raise LabError(
                f"[lab] replica_base_port {base}: gateway replicas on {base}-{ports[-1]} would"
                f" clash with {'another lab service' if clash else 'the port range'}"
                f"{f' (port {clash[0]})' if clash else ''}"
            )
        return Replicas(ports)
    return Replicas(_free_run(service_port("gateway", settings.gateway.url), count, taken))


def _lab_ports(settings: Settings) -> set[int]:
    ports = {settings.lab.policy_port}
    for name in SERVICE_NAMES:
        try:
            ports.add(service_port(name, service_url(settings, name)))
        except LabError:
            continue
    return ports


def _free_run(gateway_port: int, count: int, taken: set[int]) -> tuple[int, ...]:
    start = gateway_port + FREE_RUN_OFFSET
    while start + count - 1 <= 65535:
        run = tuple(range(start, start + count))
        busy = next((p for p in run if p in taken or not _bindable(p)), None)
        if busy is None:
            return run
        start = busy + 1
    raise LabError(f"no {count} consecutive free ports above {gateway_port + FREE_RUN_OFFSET}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def build(settings: Settings, replicas: Replicas, name: str, *, check: bool = True) -> ServiceSpec:
    """The spec of one service of the tier (``policy``, ``nginx``, ``gateway-<i>``). With
    ``check``, refuse a non-loopback gateway URL and a missing NGINX."""
    if check:
        require_loopback("gateway", settings.gateway.url)
    home = (settings.lab_dir / name).resolve()
    if name == POLICY:
        return _policy(settings, home)
    if name == NGINX:
        return _nginx(settings, replicas, home, check)
    match = REPLICA.fullmatch(name)
    if match is None or int(match.group(1)) > replicas.count:
        raise LabError(f"unknown service {name!r} (known: {', '.join(replicas.names)})")
    return _replica(settings, name, replicas.ports[int(match.group(1)) - 1], home)


def replica_settings(settings: Settings, port: int) -> Settings:
    """``settings`` with the gateway serving on ``127.0.0.1:<port>``, behind NGINX, which asks
    the policy endpoint about each request (a budget counted again here would admit half)."""
    url = f"http://127.0.0.1:{port}"
    gateway = settings.gateway.model_copy(update={"url": url, "policy_decided_upstream": True})
    return settings.model_copy(update={"gateway": gateway})


def _replica(settings: Settings, name: str, port: int, home: Path) -> ServiceSpec:
    config = home / f"{name}-settings.json"
    url = f"http://127.0.0.1:{port}"
    labels = {"service": "gateway", "replica": name}
    return ServiceSpec(
        name,
        url,
        port,
        [sys.executable, "-m", "console.lab.gateway", "--settings-json", str(config)],
        home,
        lambda t: probes.http_ok(port, "/v2/health/ready", t),
        start_timeout_s=GATEWAY_START_TIMEOUT_S,
        env={"PYTHONUNBUFFERED": "1"},
        files={
            config: resolved.dump(replica_settings(settings, port), GATEWAY_SECTIONS),
            scrape.target_file(settings, name): scrape.target_json(f"127.0.0.1:{port}", labels),
        },
    )


def policy_settings(settings: Settings) -> Settings:
    """``settings`` with ``[policy_endpoint]`` completed from ``[gateway]`` (``FROM_GATEWAY``)."""
    endpoint = settings.policy_endpoint
    taken = {
        field: getattr(settings.gateway, source)
        for field, source in FROM_GATEWAY.items()
        if field not in endpoint.model_fields_set
    }
    return settings.model_copy(update={"policy_endpoint": endpoint.model_copy(update=taken)})


def _policy(settings: Settings, home: Path) -> ServiceSpec:
    """``python -m console --config FILE policy serve``: the command a user runs, on a TOML
    file of the launcher's resolved settings (``console.lab.resolved``: absolute paths), with
    no ``CONSOLE_*`` variable of the launcher's applied a second time."""
    port = settings.lab.policy_port
    config = home / f"{POLICY}-settings.toml"
    listen = f"127.0.0.1:{port}"
    argv = [sys.executable, "-m", "console", "--config", str(config)]
    resolved_json = resolved.dump(policy_settings(settings), POLICY_SECTIONS)
    return ServiceSpec(
        POLICY,
        f"http://{listen}",
        port,
        [*argv, "policy", "serve", "--listen", listen],
        home,
        lambda t: probes.http_ok(port, "/healthz", t),
        start_timeout_s=GATEWAY_START_TIMEOUT_S,
        env={"PYTHONUNBUFFERED": "1"},
        files={
            config: toml_text(json.loads(resolved_json)),
            scrape.target_file(settings, POLICY): scrape.target_json(listen, {"service": POLICY}),
        },
        console_env=False,
    )


MASKED = "**********"
"""What ``model_dump`` makes of a secret: left out, the child reads the secret's file."""
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_text(data: Mapping[str, Any]) -> str:
    """TOML of JSON-like settings: scalars, lists of scalars, nested tables; None and masked
    secrets are left out (the field's default applies)."""
    lines = [
        "# Written by aml-console lab up from its resolved settings; rewritten on every start."
    ]
    _toml_table(lines, [], data)
    return "\n".join(lines) + "\n"


def _toml_table(lines: list[str], path: list[str], table: Mapping[str, Any]) -> None:
    subtables = []
    for key, value in table.items():
        if not BARE_KEY.fullmatch(key):
            raise LabError(f"settings key {key[:40]!r} cannot be written as TOML")
        if isinstance(value, Mapping):
            subtables.append((key, value))
        elif value is not None and value != MASKED:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in subtables:
        lines += ["", f"[{'.'.join([*path, key])}]"]
        _toml_table(lines, [*path, key], value)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):  # JSON's escapes are TOML's, but for DEL
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise LabError(f"a settings value of type {type(value).__name__} cannot be written as TOML")


def _nginx(settings: Settings, replicas: Replicas, home: Path, check: bool) -> ServiceSpec:
    """NGINX in the foreground, its prefix (config, pid file, logs, temporary files) the
    service's ``data`` folder; ``console.lab.nginx`` renders the shipped snippet."""
    url = settings.gateway.url
    port = service_port("gateway", url)
    layout = nginx.NginxLayout(home / "data")
    upstreams = [f"127.0.0.1:{p}" for p in replicas.ports]
    policy_url = f"http://127.0.0.1:{settings.lab.policy_port}"
    text = nginx.render_nginx_conf(port, upstreams, policy_url, layout.prefix)
    # Status and down need no binary.
    argv = nginx.nginx_argv(layout, "-g", "daemon off;") if check else [nginx.NGINX_BINARY]
    temp = {layout.temp / kind / ".keep": "" for kind in nginx.TEMP_KINDS}
    return ServiceSpec(
        NGINX,
        url,
        port,
        argv,
        home,
        lambda t: http_status(port, "/v2/health/ready", t) in NGINX_READY,
        files={**temp, layout.conf: text},
    )


def http_status(port: int, path: str, timeout_s: float) -> int | None:
    """The status of ``GET http://127.0.0.1:<port><path>``; None if nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def leftover(settings: Settings) -> Replicas | None:
    """The recorded tier, else one rebuilt from the replicas' pid files (the state file lost
    while they run), so ``lab down`` still stops them."""
    try:
        kept = recorded(settings)
    except LabError:  # torn: the pid files still say what runs
        kept = None
    if kept is not None:
        return kept
    ports: list[int] = []
    for index in range(1, MAX_REPLICAS + 1):
        name = replica_name(index)
        pid_record = process.read_pid(settings.lab_dir / name / f"{name}.pid")
        if pid_record is None:
            break
        ports.append(pid_record.port)
    if ports or (settings.lab_dir / NGINX / f"{NGINX}.pid").exists():
        return Replicas(tuple(ports))
    return None


__all__ = [
    "NGINX",
    "POLICY",
    "Replicas",
    "build",
    "forget",
    "policy_settings",
    "toml_text",
    "http_status",
    "leftover",
    "plan",
    "record",
    "recorded",
    "replica_name",
    "replica_settings",
]
