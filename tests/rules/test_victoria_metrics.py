"""The same rule expressions answer the same on Prometheus and VictoriaMetrics for the same
scraped data (vmalert relies on that to run the shipped rules unchanged), the bounded
per-client recordings (top lists, the listed clients) among them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from metrics_support import (
    EXTRACTION_BEHIND_SYBILS,
    RULE_FILES,
    RULES_DIR,
    Client,
    exporter_registered,
    force_flush,
    metrics_lab,
    seconds,
    wait_for_result,
)
from support import LabHandle

from console.adapters.prometheus import PrometheusClient, QueryResult
from console.lab import scrape, services

ALERT = "AMLExtractionSuspected"
K = 20
"""Clients per model in each top list (configs/prometheus/aml-recording.yml)."""
BOUNDED_GROUP = "aml-clients-bounded"

FILLERS = tuple(
    Client(f"f{i:02d}", rps=round(5.0 * 1.05**i, 4), extraction_score=round(0.06 + 0.003 * i, 3))
    for i in range(K)
)
"""Benign clients busier than the sybil traffic's: every rate 5% from the next (the engines'
rates differ by up to 2%, so the K-th and the K+1-th cannot swap), every score distinct."""


def _distinct(client: Client) -> Client:
    """carol's score off mallory-test's (no ties); eve busy enough that her flagged rows stay
    over the evasion alert's 10% of the fleet's."""
    if client.name == "carol":
        return dataclasses.replace(client, extraction_score=0.84)
    if client.name == "eve":
        return dataclasses.replace(client, rps=40.0)
    return client


REFUSED = Client("rita", rps=0.7, extraction_score=0.02)
REFUSED_RPS = 0.6
"""rita's blocked requests per second (served by ``refused_exporter``): 1.3/s in all."""
FLEET = dataclasses.replace(
    EXTRACTION_BEHIND_SYBILS,
    clients=(
        *(_distinct(c) for c in EXTRACTION_BEHIND_SYBILS.clients),
        *FILLERS,
        REFUSED,
    ),
)
"""The extraction behind sybils and more than K clients: carol (the slow attacker, 0.2/s) is
listed by her score alone, eve by her flag rate (and rate), rita by her refused ratio."""
RATES = {c.name: c.rps + (REFUSED_RPS if c is REFUSED else 0.0) for c in FLEET.clients}
BY_RATE = set(sorted(RATES, key=RATES.__getitem__, reverse=True)[:K])
SCORES = {c.name: c.extraction_score for c in FLEET.clients if c.extraction_score >= 0}
BY_SCORE = set(sorted(SCORES, key=SCORES.__getitem__, reverse=True)[:K])
LISTED = BY_RATE | BY_SCORE | {"eve", "rita"}


def rule_exprs() -> dict[str, str]:
    """Every rule's expression, by the rule's name."""
    out = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out[rule.get("record") or rule["alert"]] = rule["expr"]
    return out


def _by_labels(result: QueryResult) -> dict[frozenset[tuple[str, str]], float]:
    # VictoriaMetrics leaves NaN samples out of results; Prometheus returns them.
    return {
        frozenset((k, v) for k, v in s.metric.items() if k != "__name__"): s.value
        for s in result.samples
        if not math.isnan(s.value)
    }


# Needs more history than a test has (a baseline ending minutes ago): empty on both engines.
NEEDS_HISTORY = {
    "aml:requests:rate1m_baseline10m",
    "aml:flag_rate:ratio_rate1m_baseline30m",
    "aml:new_clients:rate1m_baseline30m",
    "aml:model_confidence:mean_1m_baseline30m",
    "aml:model_confidence:stddev_1m_baseline30m",
    "aml:model_confidence:zscore_1m",
    "AMLConfidenceShift",
    "AMLRequestCostSpike",
}
HISTORY_S = 57.0
"""Prometheus extrapolates rate() of a series younger than its window to the window's length
(VictoriaMetrics does not); it extrapolates to the full window, and the engines agree, once the
first sample is within 1.1 scrape intervals of the window's start: 1 m - 5.5 s, plus margin."""


RECORDED_LAG_S = 2 * seconds(scrape.EVALUATION_INTERVAL)
"""The bounded rules read recorded rates, computed up to two evaluations before (the per-client
rule's, then the top lists'): their windows must be full as well."""


def test_rule_expressions_agree_on_prometheus_and_victoria_metrics(tmp_path: Path) -> None:
    # vmalert too: the bounded rules read recorded series, which on VictoriaMetrics are vmalert's.
    names = ("alertmanager", "prometheus", "victoria-metrics", "vmalert")
    with metrics_lab(tmp_path / "run", names) as lab:
        services.up(lab.settings, names, rules_dir=RULES_DIR)
        prom, vm = lab.settings.prometheus.url, lab.settings.victoria_metrics.url
        with exporter_registered(lab, FLEET), refused_exporter(lab):
            # Both targets: a series younger than the window would make the engines' rates differ.
            for first in ('{client="alice"}', '{client="rita",outcome="blocked"}'):
                wait_for_result(prom, f"aml_requests_total{first}", 30)
                wait_for_result(
                    vm, f"aml_requests_total{first}", 30, before=lambda: force_flush(vm)
                )
            time.sleep(HISTORY_S + RECORDED_LAG_S)
            force_flush(vm)
            at = time.time()
            results = asyncio.run(_evaluate_all(prom, vm, at))
            # What each engine's ruler recorded (vmalert's through remote write), read by name.
            recorded = asyncio.run(_evaluate_all(prom, vm, at, _bounded_records()))

    non_empty = set()
    for name, (on_prom, on_vm) in results.items():
        assert _by_labels(on_prom).keys() == _by_labels(on_vm).keys(), name
        for labels, value in _by_labels(on_prom).items():
            # VictoriaMetrics' rate() also reads the last sample before the window, Prometheus'
            # extrapolates from the samples inside it: on a loaded machine, where scrapes drift
            # from their 5 s grid, the two differ by up to about 1% (607 vs 600 a minute seen).
            assert _by_labels(on_vm)[labels] == pytest.approx(value, rel=2e-2, abs=1e-9), (
                name,
                dict(labels),
            )
        if on_prom.samples:
            non_empty.add(name)
    assert non_empty == set(results) - NEEDS_HISTORY
    extraction = _by_labels(results[ALERT][1])
    assert {dict(k)["client"] for k in extraction} == {"mallory-test", "mallory-hidden"}
    for i, engine in enumerate(("prometheus", "victoria-metrics")):
        _assert_bounded({name: pair[i] for name, pair in results.items()}, f"{engine}: queried")
        _assert_bounded({name: pair[i] for name, pair in recorded.items()}, f"{engine}: recorded")
    for name, (on_prom, on_vm) in recorded.items():
        assert _by_labels(on_prom).keys() == _by_labels(on_vm).keys(), name


def _clients(result: QueryResult) -> set[str]:
    return {s.metric["client"] for s in result.samples}


def _assert_bounded(results: dict[str, QueryResult], where: str) -> None:
    """What the bounded recordings must say of ``FLEET`` (on one engine)."""
    top = results["aml:client_requests:top_rate1m"]
    assert _clients(top) == BY_RATE | {"(rest)"}, where
    rest = next(s.value for s in top.samples if s.metric["client"] == "(rest)")
    rest_of = sum(v for c, v in RATES.items() if c not in BY_RATE)
    assert rest == pytest.approx(rest_of, rel=2e-2), where
    assert sum(s.value for s in top.samples) == pytest.approx(sum(RATES.values()), rel=2e-2), where
    assert _clients(results["aml:client_extraction:top_score"]) == BY_SCORE
    assert "carol" not in BY_RATE and "rita" not in BY_RATE | BY_SCORE
    assert _clients(results["aml:client_flagged:top_rate1m"]) == {"eve"}
    assert _clients(results["aml:client_refused:top_ratio_rate1m"]) == {"rita"}
    for name in (
        "aml:client_listed:rate1m",
        "aml:client_listed:extraction_score",
        "aml:client_listed:refused_ratio_rate1m",
    ):
        assert _clients(results[name]) == LISTED, name
    assert _clients(results["aml:client_listed:flagged_rate1m"]) == {"eve"}
    (active,) = results["aml:clients_active:count"].samples
    assert active.value == len(FLEET.clients)


def _bounded_records() -> dict[str, str]:
    """The bounded group's recorded series, each queried by its own name."""
    out: dict[str, str] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            if group["name"] == BOUNDED_GROUP:
                out |= {rule["record"]: rule["record"] for rule in group["rules"]}
    assert out, f"no group {BOUNDED_GROUP} in {RULES_DIR}"
    return out


@contextlib.contextmanager
def refused_exporter(lab: LabHandle) -> Iterator[None]:
    """A second target: rita's blocked requests (the metric contract's exporter serves only
    answered ones), linear in wall-clock time like the first."""
    started = time.time()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            count = REFUSED_RPS * (time.time() - started)
            body = (
                "# TYPE aml_requests_total counter\n"
                f'aml_requests_total{{model="{FLEET.model}",version="{FLEET.version}",'
                f'client="{REFUSED.name}",outcome="blocked"}} {count:.6f}\n'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        scrape.register_target(lab.settings, "refused", address, {"service": "test-exporter"})
        yield
    finally:
        scrape.unregister_target(lab.settings, "refused")
        server.shutdown()
        server.server_close()


async def _evaluate_all(
    prom_url: str, vm_url: str, at: float, exprs: dict[str, str] | None = None
) -> dict[str, tuple[QueryResult, QueryResult]]:
    exprs = rule_exprs() if exprs is None else exprs
    async with (
        PrometheusClient.connect(prom_url, 5.0) as prom,
        PrometheusClient.connect(vm_url, 5.0, backend="victoria-metrics") as vm,
    ):
        pairs = await asyncio.gather(
            *(asyncio.gather(prom.query(e, at), vm.query(e, at)) for e in exprs.values())
        )
    return {name: (p, v) for name, (p, v) in zip(exprs, pairs, strict=True)}
