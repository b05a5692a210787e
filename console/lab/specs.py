"""How each lab service is started: binary, flags, config files, readiness probe.

``BINARIES`` and ``MLFLOW_MODULE`` are module-level so a test can point them at something that
does not exist and see the install hint.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from console.adapters.rule_files import RULES_DIR
from console.config import Settings
from console.errors import LabError
from console.lab import probes, resolved, scrape
from console.urls import redact_url

SERVICE_NAMES: tuple[str, ...] = (
    "redis",
    "mlflow",
    "alertmanager",
    "prometheus",
    "victoria-metrics",
    "vmalert",
    "gateway",
    "traffic",
)
"""Every service the launcher knows, in start order (the gateway after the seed exists, benign
traffic once the gateway serves)."""

BINARIES: dict[str, str] = {
    "redis": "redis-server",
    "alertmanager": "prometheus-alertmanager",
    "prometheus": "prometheus",
    "victoria-metrics": "victoria-metrics",
    "vmalert": "vmalert",
}
"""Executable looked up on PATH for each Debian-packaged service."""

APT_PACKAGES: dict[str, str] = {
    "redis": "redis-server",
    "alertmanager": "prometheus-alertmanager",
    "prometheus": "prometheus",
    "victoria-metrics": "victoria-metrics",
    "vmalert": "victoria-metrics",
}

METRICS_ENGINES: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "victoria-metrics": ("victoria-metrics", "vmalert"),
}
"""``lab up --metrics``: the services that scrape, store and evaluate the rules."""

MLFLOW_MODULE = "mlflow"
"""Python module run as ``python -m <module> server``."""

DEFAULT_START_TIMEOUT_S = 15.0
GATEWAY_START_TIMEOUT_S = 60.0
"""Ready means every served model is loaded: imports, artifact download, hash check."""
DEFAULT_RULES_DIR = RULES_DIR
"""Prometheus loads ``*.yml`` rule files from here (relative to the working directory)."""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    url: str
    port: int
    argv: list[str]
    home: Path
    """``<lab_dir>/<name>``: data, config, log and pid file."""
    probe: Callable[[float], bool]
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S
    env: dict[str, str] = field(default_factory=dict)
    files: dict[Path, str] = field(default_factory=dict)
    """Config files written before each start."""
    console_env: bool = True
    """False: the launcher's ``CONSOLE_*`` variables are not passed (its settings are in a file)."""

    @property
    def pid_path(self) -> Path:
        return self.home / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"


def service_url(settings: Settings, name: str) -> str:
    sections = {
        "redis": settings.redis.url,
        "mlflow": settings.mlflow.url,
        "alertmanager": settings.alertmanager.url,
        "prometheus": settings.prometheus.url,
        "victoria-metrics": settings.victoria_metrics.url,
        "vmalert": settings.victoria_metrics.vmalert_url,
        "gateway": settings.gateway.url,
        "traffic": settings.traffic.url,
    }
    if name not in sections:
        raise LabError(f"unknown service {name!r} (known: {', '.join(SERVICE_NAMES)})")
    return sections[name]


def service_port(name: str, url: str) -> int:
    try:
        port = urlsplit(url).port
    except ValueError:
        port = None
    if port is None:
        shown = redact_url(url)
        raise LabError(f"{name}: url {shown!r} has no valid port; the lab needs an explicit one")
    return port


def require_loopback(name: str, url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LabError(
            f"{name}: refusing to start a service for {redact_url(url)!r}: the lab only runs on"
            " loopback (127.0.0.1)"
        )


def _binary(name: str) -> str:
    path = shutil.which(BINARIES[name])
    if path is None:
        raise LabError(
            f"{BINARIES[name]} not found: install it with "
            f"`apt-get install -y --no-install-recommends {APT_PACKAGES[name]}`"
        )
    return path


def _check_mlflow() -> None:
    if importlib.util.find_spec(MLFLOW_MODULE) is None:
        raise LabError(f"{MLFLOW_MODULE} not installed: pip install -e '.[lab]'")


def build(
    settings: Settings, name: str, *, rules_dir: Path | None = None, check: bool = True
) -> ServiceSpec:
    """The spec of one service. With ``check``, refuse non-loopback URLs and missing binaries."""
    url = service_url(settings, name)
    port = service_port(name, url)
    if check:
        require_loopback(name, url)
    home = (settings.lab_dir / name).resolve()
    builders = {
        "redis": _redis,
        "mlflow": _mlflow,
        "alertmanager": _alertmanager,
        "prometheus": _prometheus,
        "victoria-metrics": _victoria_metrics,
        "vmalert": _vmalert,
        "gateway": _gateway,
        "traffic": _traffic,
    }
    return builders[name](settings, url, port, home, rules_dir or DEFAULT_RULES_DIR, check)


def _redis(
    settings: Settings, url: str, port: int, home: Path, rules_dir: Path, check: bool
) -> ServiceSpec:
    binary = _binary("redis") if check else BINARIES["redis"]
    argv = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(home / "data"),
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--logfile",
        "",
    ]
    return ServiceSpec("redis", url, port, argv, home, lambda t: probes.redis_ping(port, t))


def _mlflow(
    settings: Settings, url: str, port: int, home: Path, rules_dir: Path, check: bool
) -> ServiceSpec:
    if check:
        _check_mlflow()
    data = home / "data"
    hosts = f"127.0.0.1:{port},localhost:{port},127.0.0.1,localhost"
    origins = f"http://127.0.0.1:{port},http://localhost:{port}"
    argv = [
        sys.executable,
        "-m",
        MLFLOW_MODULE,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{data / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(data / "artifacts"),
        "--allowed-hosts",
        hosts,
        "--cors-allowed-origins",
        origins,
    ]
    env = {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONUNBUFFERED": "1",
    }
    # /health skips the Host check; a registry call proves the API (and its database) answer.
    ready_path = "/api/2.0/mlflow/registered-models/search?max_results=1"
    return ServiceSpec(
        "mlflow",
        url,
        port,
        argv,
        home,
        lambda t: probes.http_ok(port, ready_path, t),
        start_timeout_s=settings.lab.mlflow_start_timeout_s,
        env=env,
    )


def _alertmanager(
    settings: Settings, url: str, port: int, home: Path, rules_dir: Path, check: bool
) -> ServiceSpec:
    binary = _binary("alertmanager") if check else BINARIES["alertmanager"]
    config = home / "alertmanager.yml"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # empty: no gossip port, no HA mode
    ]
    text = (
        "# Written by aml-console lab up; rewritten on every start.\n"
        'route:\n  receiver: "null"\n  group_wait: 1s\n  group_interval: 5s\n'
        'receivers:\n  - name: "null"\n'
    )
    return ServiceSpec(
        "alertmanager",
        url,
        port,
        argv,
        home,
        lambda t: probes.http_ok(port, "/-/ready", t),
        files={config: text},
    )


def _prometheus(
    settings: Settings, url: str, port: int, home: Path, rules_dir: Path, check: bool
) -> ServiceSpec:
    binary = _binary("prometheus") if check else BINARIES["prometheus"]
    config = home / "prometheus.yml"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url={url}",  # alerts' links (generatorURL); default: the host name
        "--web.enable-lifecycle",
        # The default resend delay (1 m) makes a firing alert reach Alertmanager late.
        "--rules.alert.resend-delay=5s",
    ]
    return ServiceSpec(
        "prometheus",
        url,
        port,
        argv,
        home,
        lambda t: probes.http_ok(port, "/-/ready", t),
        files={
            config: prometheus_config(settings, port, rules_dir),
            **scrape.targets_readme(settings),
        },
    )


def prometheus_config(settings: Settings, port: int, rules_dir: Path) -> str:
    """Scrape itself, send alerts to the lab's Alertmanager, load ``rules_dir/*.yml`` if any."""
    am = urlsplit(settings.alertmanager.url)
    lines = [
        "# Written by aml-console lab up; rewritten on every start.",
        "global:",
        f"  scrape_interval: {scrape.SCRAPE_INTERVAL}",
        f"  evaluation_interval: {scrape.EVALUATION_INTERVAL}",
    ]
    if rules_dir.is_dir():
        lines += ["rule_files:", f"  - {json.dumps(str(rules_dir.resolve() / '*.yml'))}"]
    if am.hostname and am.port:
        lines += [
            "alerting:",
            "  alertmanagers:",
            "    - static_configs:",
            f"        - targets: ['{am.hostname}:{am.port}']",
        ]
    lines += scrape.scrape_configs(settings, "prometheus", port, file_refresh=True)
    return "\n".join(lines) + "\n"


def _victoria_metrics(
    settings: Settings, url: str, port: int, home: Path, rules_dir: Path, check: bool
) -> ServiceSpec:
    binary = _binary("victoria-metrics") if check else BINARIES["victoria-metrics"]
    config = home / "scrape.yml"
    argv = [
        binary,
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={home / 'data'}",
        f"-promscrape.config={config}",
        f"-promscrape.fileSDCheckInterval={scrape.SCRAPE_INTERVAL}",  # default 5 m
        # Default 30 s: a sample would be invisible to queries (and rules) for half a minute.
        "-search.latencyOffset=0s",
    ]
    return ServiceSpec(
        "victoria-metrics",
        url,
        port,
        argv,
        home,
        lambda t: probes.http_ok(port, "/health", t),
        files={
            config: victoria_metrics_config(settings, port),
            **scrape.targets_readme(settings),
        },
    )


def victoria_metrics_config(settings: Settings, port: int) -> str:
    """Prometheus' scrape config (same interval and jobs); rules are vmalert's."""
    lines = [
        "# Written by aml-console lab up; rewritten on every start.",
        "global:",
        f"  scrape_interval: {scrape.SCRAPE_INTERVAL}",
        *scrape.scrape_configs(settings, "victoria-metrics", port, file_refresh=False),
    ]
    return "\n".join(lines) + "\n"


def _vmalert(
    settings: Settings, url: str, port: int, home: Path, rules_dir: Path, check: bool
) -> ServiceSpec:
    binary = _binary("vmalert") if check else BINARIES["vmalert"]
    if check and not any(rules_dir.glob("*.yml")):
        raise LabError(f"vmalert: no rule files {rules_dir.resolve() / '*.yml'}")
    vm = settings.victoria_metrics.url
    argv = [
        binary,
        f"-rule={rules_dir.resolve() / '*.yml'}",
        f"-datasource.url={vm}",
        f"-remoteWrite.url={vm}",  # recorded series (and alert state) go back into VictoriaMetrics
        "-remoteWrite.flushInterval=1s",
        f"-notifier.url={settings.alertmanager.url}",
        f"-evaluationInterval={scrape.EVALUATION_INTERVAL}",
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-external.url={url}",
        # Otherwise every alert and recorded series gains an `alertgroup` label (not in Prometheus).
        "-disableAlertgroupLabel",
    ]
    return ServiceSpec(
        "vmalert", url, port, argv, home, lambda t: probes.http_ok(port, "/-/ready", t)
    )


def _python_service(
    settings: Settings,
    name: str,
    module: str,
    port: int,
    url: str,
    home: Path,
    ready_path: str,
    sections: tuple[str, ...],
) -> ServiceSpec:
    """A service of this package (``python -m module --settings-json FILE``), scraped by the
    query engine (a file_sd target named after it) and ready once ``ready_path`` answers."""
    config = home / f"{name}-settings.json"
    argv = [sys.executable, "-m", module, "--settings-json", str(config)]
    return ServiceSpec(
        name,
        url,
        port,
        argv,
        home,
        lambda t: probes.http_ok(port, ready_path, t),
        # Imports (onnxruntime, scikit-learn) and, for the gateway, loading every model.
        start_timeout_s=GATEWAY_START_TIMEOUT_S,
        env={"PYTHONUNBUFFERED": "1"},
        files={
            config: resolved.dump(settings, sections),
            scrape.target_file(settings, name): scrape.target_json(
                f"127.0.0.1:{port}", {"service": name}
            ),
        },
    )


def _gateway(
    settings: Settings, url: str, port: int, home: Path, rules_dir: Path, check: bool
) -> ServiceSpec:
    return _python_service(
        settings,
        "gateway",
        "console.lab.gateway",
        port,
        url,
        home,
        "/v2/health/ready",
        GATEWAY_SECTIONS,
    )


GATEWAY_SECTIONS = ("redis", "mlflow", "traces", "samples", "models", "detectors", "gateway")
"""The settings the gateway runs with (``console.lab.resolved``)."""


def _traffic(
    settings: Settings, url: str, port: int, home: Path, rules_dir: Path, check: bool
) -> ServiceSpec:
    return _python_service(
        settings,
        "traffic",
        "console.lab.traffic_service",
        port,
        url,
        home,
        "/metrics",
        ("models", "gateway", "traffic"),
    )


def child_env(spec: ServiceSpec) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if spec.console_env or k[:8] != "CONSOLE_"}
    return {**inherited, **spec.env}
