"""Helpers for the rule and query-engine tests: a real HTTP exporter of the metric contract,
isolated metric labs, and waiting on Alertmanager.

The exporter stands in for the lab gateway (which these tests must not need): it serves the
contract's series on ``/metrics`` with every counter growing linearly in wall-clock time, so two
engines scraping it at different moments still compute the same rates and quantiles.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml
from support import REPO, LabHandle, cli_env, free_port, lab_config, unavailable, write_config

from console.config import load_settings
from console.lab import scrape, services, specs

RULES_DIR = REPO / "configs" / "prometheus"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))

# Cumulative share of requests at or under each bucket bound. About 1.5% are over 250 ms, so
# P99 lands at 375 ms: over the latency objective, which exercises that alert too.
LATENCY_CDF = {
    "0.005": 0.5,
    "0.01": 0.8,
    "0.025": 0.9,
    "0.05": 0.95,
    "0.1": 0.97,
    "0.25": 0.98,
    "0.5": 1.0,
    "1": 1.0,
    "+Inf": 1.0,
}
SCORE_CDF = {"0.1": 0.6, "0.25": 0.8, "0.5": 0.9, "0.75": 0.97, "1": 1.0, "+Inf": 1.0}
CONFIDENCE_CDF = {"0.5": 0.02, "0.7": 0.05, "0.9": 0.2, "0.99": 0.7, "1": 1.0, "+Inf": 1.0}


@dataclass(frozen=True)
class Client:
    name: str
    rps: float
    extraction_score: float
    flagged: float = 0.0
    """Share of the client's requests the detector flags."""


@dataclass(frozen=True)
class Traffic:
    clients: tuple[Client, ...]
    model: str = "digits"
    version: str = "2"
    mean_latency_s: float = 0.012
    mean_score: float = 0.2
    mean_confidence: float = 0.93
    new_clients_per_s: float = 0.0
    """Client ids the gateway sees for the first time, per second (a Sybil signal)."""
    label_slots: tuple[int, int] | None = None
    """(used, capacity) of the gateway's client-label slots."""
    unlabelled: tuple[str, float, float] | None = None
    """The riskiest client counted as ``other``: (id, extraction score, answered/s)."""


# Scores on the gateway's scale (1 - W): benign clients 0.05-0.13, the lab's attacker 0.86.
EXTRACTION = Traffic(
    clients=(
        Client("mallory-test", rps=20.0, extraction_score=0.85),
        Client("alice", rps=2.0, extraction_score=0.03),
        # A high score on too few queries: under the rate floor, must not alert.
        Client("carol", rps=0.2, extraction_score=0.85),
        # Evasion, not extraction: every row flagged.
        Client("eve", rps=3.0, extraction_score=0.05, flagged=1.0),
    )
)
# The same, behind throwaway ids: they hold every label slot, the bucket of clients without
# a label of their own (no extraction gauge) has traffic, and an extractor hidden in it is
# exported by name.
EXTRACTION_BEHIND_SYBILS = dataclasses.replace(
    EXTRACTION,
    clients=(*EXTRACTION.clients, Client("other", rps=4.0, extraction_score=-1.0)),
    new_clients_per_s=10.0,
    label_slots=(200, 200),
    unlabelled=("mallory-hidden", 0.9, 4.0),
)


def exposition(traffic: Traffic, elapsed_s: float) -> str:
    """The contract's series after ``elapsed_s`` seconds of ``traffic``."""
    m, v = traffic.model, traffic.version
    out: list[str] = ["# TYPE aml_requests_total counter"]
    for c in traffic.clients:
        out.append(
            f'aml_requests_total{{model="{m}",version="{v}",client="{c.name}",outcome="ok"}} '
            f"{c.rps * elapsed_s:.6f}"
        )
    out.append("# TYPE aml_flagged_total counter")
    for c in traffic.clients:
        if c.flagged:
            out.append(
                f'aml_flagged_total{{model="{m}",version="{v}",client="{c.name}",'
                f'reason="squeeze"}} {c.rps * c.flagged * elapsed_s:.6f}'
            )
    out.append("# TYPE aml_client_extraction_score gauge")
    for c in traffic.clients:
        if c.extraction_score >= 0:
            out.append(
                f'aml_client_extraction_score{{model="{m}",client="{c.name}"}} {c.extraction_score}'
            )
    out.append("# TYPE aml_new_clients_total counter")
    out.append(f"aml_new_clients_total {traffic.new_clients_per_s * elapsed_s:.6f}")
    if traffic.label_slots is not None:
        used, capacity = traffic.label_slots
        out += [
            "# TYPE aml_client_label_slots_used gauge",
            f"aml_client_label_slots_used {used}",
            "# TYPE aml_client_label_slots_capacity gauge",
            f"aml_client_label_slots_capacity {capacity}",
        ]
    if traffic.unlabelled is not None:
        who, score, answered = traffic.unlabelled
        series = f'{{model="{m}",client="{who}"}}'
        out += [
            "# TYPE aml_unlabelled_extraction_score gauge",
            f"aml_unlabelled_extraction_score{series} {score}",
            "# TYPE aml_unlabelled_answered_rate gauge",
            f"aml_unlabelled_answered_rate{series} {answered}",
        ]
    out.append("# TYPE aml_policy_blocked gauge")
    out += [f'aml_policy_blocked{{client="{c.name}"}} 0' for c in traffic.clients]
    out.append("# TYPE aml_policy_budget_qpm gauge")
    out += [f'aml_policy_budget_qpm{{client="{c.name}"}} 6000' for c in traffic.clients]
    total = sum(c.rps for c in traffic.clients) * elapsed_s
    labels = f'model="{m}",version="{v}"'
    out += _histogram(
        "aml_request_duration_seconds", labels, LATENCY_CDF, total, traffic.mean_latency_s
    )
    out += _histogram("aml_detector_score", labels, SCORE_CDF, total, traffic.mean_score)
    out += _histogram(
        "aml_prediction_confidence", labels, CONFIDENCE_CDF, total, traffic.mean_confidence
    )
    return "\n".join(out) + "\n"


def _histogram(
    name: str, labels: str, cdf: dict[str, float], count: float, mean: float
) -> list[str]:
    lines = [f"# TYPE {name} histogram"]
    lines += [
        f'{name}_bucket{{{labels},le="{le}"}} {share * count:.6f}' for le, share in cdf.items()
    ]
    lines.append(f"{name}_sum{{{labels}}} {mean * count:.6f}")
    lines.append(f"{name}_count{{{labels}}} {count:.6f}")
    return lines


class Exporter:
    """A real HTTP exporter on 127.0.0.1 (``/metrics``), counters linear in wall-clock time."""

    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic
        self.started_at = time.time()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exposition(exporter.traffic, time.time() - exporter.started_at).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def exporter_registered(
    lab: LabHandle, traffic: Traffic, name: str = "exporter"
) -> Iterator[Exporter]:
    """Serve ``traffic`` and register it as a scrape target of ``lab`` (file_sd)."""
    exporter = Exporter(traffic)
    try:
        scrape.register_target(lab.settings, name, exporter.address, {"service": "test-exporter"})
        yield exporter
    finally:
        scrape.unregister_target(lab.settings, name)
        exporter.close()


METRIC_BINARIES = ("alertmanager", "prometheus", "victoria-metrics", "vmalert")


@contextmanager
def metrics_lab(run_dir: Path, services_list: tuple[str, ...]) -> Iterator[LabHandle]:
    """An isolated lab (own run dir, free ports, VictoriaMetrics included) that is stopped on
    exit. Nothing is started here."""
    missing = [
        specs.BINARIES[n] for n in METRIC_BINARIES if shutil.which(specs.BINARIES[n]) is None
    ]
    if missing:
        unavailable(f"not installed: {', '.join(missing)}")
    ports = {name: free_port() for name in ("redis", "mlflow", "alertmanager", "prometheus")}
    text = lab_config(run_dir, ports, services=services_list)
    text += (
        "\n[victoria_metrics]\n"
        f'url = "http://127.0.0.1:{free_port()}"\n'
        f'vmalert_url = "http://127.0.0.1:{free_port()}"\n'
    )
    config_path = run_dir / "config.toml"
    write_config(config_path, text)
    settings = load_settings(config_path)
    handle = LabHandle(
        settings=settings, config_path=config_path, run_dir=run_dir, env=cli_env(config_path)
    )
    try:
        yield handle
    finally:
        services.down(settings)


def force_flush(vm_url: str) -> None:
    """Make VictoriaMetrics' in-memory samples searchable now."""
    httpx.get(f"{vm_url}/internal/force_flush", timeout=5, trust_env=False).raise_for_status()


def active_alerts(am_url: str, alertname: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{am_url}/api/v2/alerts",
        params={"filter": f'alertname="{alertname}"', "active": "true"},
        timeout=5,
        trust_env=False,
    )
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return alerts


def wait_for_alert(
    am_url: str, alertname: str, client: str, timeout_s: float
) -> tuple[dict[str, Any], float]:
    """The first active alert ``alertname{client=...}`` in Alertmanager, and the seconds it took."""
    start = time.monotonic()
    while True:
        for alert in active_alerts(am_url, alertname):
            if alert["labels"].get("client") == client:
                return alert, time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise AssertionError(
                f"{alertname}{{client={client!r}}} not in Alertmanager after {timeout_s:g} s"
            )
        time.sleep(0.5)


def wait_for_result(
    url: str, expr: str, timeout_s: float, before: Callable[[], None] | None = None
) -> float:
    """Seconds until the instant query ``expr`` answers a non-empty result on ``url``
    (``before`` runs before each try: VictoriaMetrics' flush)."""
    start = time.monotonic()
    while True:
        if before is not None:
            before()
        response = httpx.get(
            f"{url}/api/v1/query", params={"query": expr}, timeout=5, trust_env=False
        )
        if response.status_code == 200 and response.json()["data"]["result"]:
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{expr!r} still empty on {url} after {timeout_s:g} s")
        time.sleep(0.25)


def seconds(duration: str) -> float:
    """A Prometheus duration such as ``15s``, ``1m`` or ``1m30s``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total, number = 0.0, ""
    i = 0
    while i < len(duration):
        ch = duration[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if duration.startswith("ms", i) else ch
        total += float(number) * units[unit]
        number, i = "", i + len(unit)
    if number or math.isnan(total):
        raise ValueError(f"not a duration: {duration!r}")
    return total


def alert_for_s(alertname: str) -> float:
    """The ``for:`` of an alert in the shipped rule files, in seconds."""
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alertname:
                    return seconds(rule.get("for", "0s"))
    raise AssertionError(f"no alert {alertname} in {RULES_DIR}")


RESEND_S = 5.0
"""--rules.alert.resend-delay in console/lab/specs.py."""
MARGIN_S = 10.0


def alert_bound_s(alertname: str) -> float:
    """How long a new target's alert may take to reach Alertmanager: the target is found (the
    file watcher, at worst the 5 s refresh), scraped twice (a rate needs two samples), seen at
    the next evaluation, held for ``for:`` (checked at evaluations), then sent."""
    scrape_s = seconds(scrape.SCRAPE_INTERVAL)
    eval_s = seconds(scrape.EVALUATION_INTERVAL)
    discovery_s = scrape_s
    return (
        discovery_s + 2 * scrape_s + eval_s + alert_for_s(alertname) + eval_s + RESEND_S + MARGIN_S
    )
