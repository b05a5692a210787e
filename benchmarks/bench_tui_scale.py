"""The Clients view at N client series, per engine: one of the benchmark's own (the launcher's
specs, the project's rules, a temporary run dir, free ports) scraping a synthetic exporter of N
clients; once every recorded series the view and the bounded rules need exists, every rule
group has run since the 1 m windows filled: the view's refresh and each of its reads alone,
where the slow attacker is, the rule groups' evaluation times, the engine's rule errors, and
the real app's peak RSS (``bench_tui_driver.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_tui_exporter import ATTACKER, SyntheticExporter
from bench_tui_reads import against_slowest, interleaved, reason, recorded_reads
from bench_tui_rules import (
    EVERY_CLIENT,
    RULES,
    Evaluations,
    readiness,
    rule_errors,
    wait_until_ready,
)

from console.adapters.backends import Backends, MetricsEngine
from console.adapters.prometheus import PrometheusClient
from console.config import Settings, load_settings
from console.errors import ConsoleError
from console.lab import scrape, services
from console.views.clients import fetch_clients

REPO = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).resolve().parent / "bench_tui_driver.py"
FIRST_SCREEN = 10
REFRESH_RATIO_TARGET = 2.0
ENGINE_STATS: dict[MetricsEngine, dict[str, str]] = {
    "prometheus": {
        "rule_group_iterations_missed_1m": (
            "sum by (rule_group) (increase(prometheus_rule_group_iterations_missed_total[1m]))"
        ),
        "head_series": "max(prometheus_tsdb_head_series)",
        "synthetic_scrape_duration_s": 'max(scrape_duration_seconds{service="synthetic"})',
    },
    "victoria-metrics": {
        "rule_group_iterations_missed_1m": (
            "sum by (group) (increase(vmalert_iteration_missed_total[1m]))"
        ),
        "active_series": 'max(vm_cache_entries{type="storage/hour_metric_ids"})',
        "synthetic_scrape_duration_s": 'max(scrape_duration_seconds{service="synthetic"})',
    },
}
"""How busy the benchmark's engine is: a rule group that takes longer than the 5 s evaluation
interval misses iterations, and every query then competes with it."""
FLOOR = "engine.count_every_client"
"""What reading every client's series once costs the engine (``EVERY_CLIENT``): a view that
reads them all cannot go below it; one that reads bounded recordings can."""
LIMITS = re.compile(r"maxUniqueTimeseries|maxSamplesPerQuery|maxSeries|too many|limit", re.I)


@contextlib.contextmanager
def own_engine(lab: Settings, engine: MetricsEngine) -> Iterator[Settings]:
    """Settings whose query engine is one started for the benchmark with the launcher's specs
    (Prometheus, or VictoriaMetrics with vmalert: 5 s scrape and evaluation, the project's
    rules, file_sd targets) in a temporary run dir on free ports; no Alertmanager, so
    synthetic alerts reach nobody. Stopped and removed on exit."""
    from bench_support import free_port  # not at the top: the TUI driver needs no numpy

    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-tui-{engine}-"))
    names = list(services.with_metrics_engine([], engine))
    update: dict[str, Any] = {
        "run_dir": run_dir,
        "alertmanager": lab.alertmanager.model_copy(update={"url": "http://127.0.0.1"}),
    }
    if engine == "prometheus":
        url = f"http://127.0.0.1:{free_port()}"
        update["prometheus"] = lab.prometheus.model_copy(update={"url": url})
    else:
        vm = {
            "url": f"http://127.0.0.1:{free_port()}",
            "vmalert_url": f"http://127.0.0.1:{free_port()}",
        }
        update["victoria_metrics"] = lab.victoria_metrics.model_copy(update=vm)
    settings = lab.model_copy(update=update)
    try:
        services.up(settings, names, seed=False, rules_dir=RULES)
        yield settings
    finally:
        services.down(settings, names)
        shutil.rmtree(run_dir, ignore_errors=True)


async def _stat(prom: PrometheusClient, expr: str) -> float | str | dict[str, float]:
    """One value, or one per rule group (Prometheus names a group ``file;name``)."""
    try:
        result = await prom.query(expr)
    except ConsoleError as exc:
        return f"failed: {reason(exc)}"
    if not result.samples:
        return "no data"
    groups: dict[str, float] = {}
    for sample in result.samples:
        group = sample.metric.get("rule_group") or sample.metric.get("group") or ""
        groups[group.rsplit(";", 1)[-1]] = round(sample.value, 3)
    return groups if len(groups) > 1 or "" not in groups else groups[""]


async def _series_counts(prom: PrometheusClient, exprs: list[str]) -> dict[str, float | str]:
    counts: dict[str, float | str] = {}
    for expr in exprs:
        value = await _stat(prom, expr)
        counts[expr] = value if isinstance(value, float | str) else str(value)
    return counts


async def _clients_at(
    settings: Settings, engine: MetricsEngine, n: int, refreshes: int, settle_s: float
) -> dict[str, Any]:
    sources = Backends(settings, metrics=engine)
    evaluations = Evaluations(settings, engine)
    try:
        first = await recorded_reads(sources, fetch_clients)
        checks = readiness(first.queries, n)
        ready_s, missing = await wait_until_ready(
            sources.prometheus, checks, timeout_s=300 + n / 500
        )
        await evaluations.sleep(settle_s)  # full 1 m rate windows behind every recorded sample
        windows_full = time.time()
        evaluated_s, late = await evaluations.wait_all_after(windows_full, 60 + n / 1000)
        # Still there after the groups' last run (a limit may drop a series at a larger N).
        counts = await _series_counts(sources.prometheus, list(checks))
        recorded = await recorded_reads(sources, fetch_clients)
        # The benchmark's engine has no Alertmanager: its reads fail at once, timed or not.
        reads = {k: v for k, v in recorded.reads.items() if not k.startswith("alertmanager.")}
        reads[FLOOR] = functools.partial(sources.prometheus.query, EVERY_CLIENT)
        refresh, alone = await interleaved(
            functools.partial(fetch_clients, sources), reads, refreshes
        )
        floor = alone.pop(FLOOR)  # not the view's: against the refresh alone, below
        await evaluations.poll()
        stage: dict[str, Any] = {
            "series_ready_after_s": round(ready_s, 1),
            "groups_evaluated_after_windows_full_s": evaluated_s,
        }
        if missing:
            stage["not_ready_after_timeout"] = missing
        if late:
            stage["groups_not_evaluated_after_windows_full"] = late
        if len(reads) < len(recorded.reads) + 1:
            stage["not_timed"] = "alertmanager reads: the benchmark's engine has no Alertmanager"
        stage["series"] = counts
        stage.update(against_slowest(refresh, alone))
        stage.update(await _attacker(sources))
        stage["rule_groups"] = evaluations.report(since=windows_full - settle_s)
        stats = ENGINE_STATS[engine]
        stage["engine"] = {name: await _stat(sources.prometheus, e) for name, e in stats.items()}
    finally:
        await sources.aclose()
    failed = recorded.failed
    if failed:
        stage["fetch_failed"] = failed
    errors = await rule_errors(settings, engine)
    if errors:
        stage["rule_errors"] = errors
    reported = [
        *errors.values(),
        *stage.get("errors", {}).values(),
        failed or "",
        floor.error or "",
    ]
    reported += [str(v) for v in [*missing.values(), *counts.values()]]
    limits = sorted({e for e in reported if e and LIMITS.search(e)})
    if limits:
        stage["limit_errors"] = limits  # answers cut short or refused: the figures are not whole
    stage["engine_floor_median_ms"] = floor.median_ms
    if floor.error:
        stage["engine_floor_error"] = floor.error
    if refresh.median_ms is not None and floor.median_ms:
        stage["ratio_refresh_vs_engine_floor"] = round(refresh.median_ms / floor.median_ms, 2)
    return stage


async def _attacker(sources: Backends) -> dict[str, Any]:
    """Where the slow attacker is in the Clients view, as one refresh lists it."""
    try:
        rows = (await fetch_clients(sources)).rows
    except ConsoleError as exc:
        return {"rows": 0, "attacker_on_first_screen": False, "attacker_error": reason(exc)}
    clients = [row.client for row in rows]
    rank = clients.index(ATTACKER) + 1 if ATTACKER in clients else None
    return {
        "rows": len(rows),
        "attacker_row": rank,
        "attacker_on_first_screen": rank is not None and rank <= FIRST_SCREEN,
        "first_screen": clients[:FIRST_SCREEN],
    }


def _tui_peak(
    config: Path, settings: Settings, engine: MetricsEngine, refreshes: int
) -> dict[str, Any]:
    """The real app, headless, in a process of its own on the Clients view."""
    env = {
        **os.environ,
        "CONSOLE_PROMETHEUS__URL": str(settings.prometheus.url),
        "CONSOLE_VICTORIA_METRICS__URL": str(settings.victoria_metrics.url),
        "CONSOLE_VICTORIA_METRICS__VMALERT_URL": str(settings.victoria_metrics.vmalert_url),
        "CONSOLE_ALERTMANAGER__URL": str(settings.alertmanager.url),
    }
    argv = [sys.executable, str(DRIVER), "--config", str(config), "--engine", engine]
    argv += ["--refreshes", str(refreshes)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    except subprocess.TimeoutExpired:
        return {"error": "the TUI driver did not finish within 300 s"}
    if done.returncode != 0:
        return {"error": f"the TUI driver failed: {done.stderr.strip()[-2000:]}"}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def scale(
    config: Path,
    sizes: list[int],
    refreshes: int,
    settle_s: float,
    engine: MetricsEngine,
    tui_refreshes: int = 5,
) -> dict[str, Any]:
    """The Clients view at each of ``sizes`` clients on an ``engine`` of the benchmark's own,
    the sizes in turn (growing) against the same engine."""
    out: dict[str, Any] = {}
    lab = load_settings(config)
    with SyntheticExporter() as exporter, own_engine(lab, engine) as settings:
        scrape.register_target(settings, "synthetic", exporter.address, {"service": "synthetic"})
        if engine == "victoria-metrics":  # its rule groups' missed iterations are vmalert's
            address = str(settings.victoria_metrics.vmalert_url).split("//", 1)[1].rstrip("/")
            scrape.register_target(settings, "vmalert", address, {"service": "vmalert"})
        for n in sorted(sizes):
            exporter.clients = n
            stage = asyncio.run(_clients_at(settings, engine, n, refreshes, settle_s))
            stage["tui"] = _tui_peak(config, settings, engine, tui_refreshes)
            out[f"clients_{n}"] = stage
    out.update(_scale_ratios(out, sorted(sizes)))
    return out


def _scale_ratios(stages: dict[str, Any], sizes: list[int]) -> dict[str, Any]:
    """Refresh and the app's peak RSS at each N against the smallest N, and the attacker."""
    out: dict[str, Any] = {
        "attacker_on_first_screen": {
            str(n): stages[f"clients_{n}"]["attacker_on_first_screen"] for n in sizes
        }
    }
    smallest = stages[f"clients_{sizes[0]}"]
    for n in sizes[1:]:
        stage = stages[f"clients_{n}"]
        if stage["refresh_median_ms"] and smallest["refresh_median_ms"]:
            ratio = round(stage["refresh_median_ms"] / smallest["refresh_median_ms"], 2)
            out[f"ratio_refresh_{n}_vs_{sizes[0]}"] = ratio  # answered ones only
            if n == sizes[-1]:
                out[f"refresh_ratio_under_{REFRESH_RATIO_TARGET:g}x"] = ratio < REFRESH_RATIO_TARGET
        peaks = stage["tui"].get("peak_rss_mib"), smallest["tui"].get("peak_rss_mib")
        if all(peaks):
            out[f"ratio_tui_peak_rss_{n}_vs_{sizes[0]}"] = round(peaks[0] / peaks[1], 2)
    return out
