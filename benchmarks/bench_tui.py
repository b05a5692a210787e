"""The on-call TUI: time to the first live frame, one refresh of each view against its slowest
query, and the Clients view at 100 to 100,000 client series.

    python benchmarks/bench_tui.py [--config configs/lab.toml] [--starts 5] [--refreshes 20]
        [--sizes 100,10000,100000] [--scale-refreshes 10] [--settle-s 60]

Brings up (or reuses) the config's lab with the project's launcher, then measures, each against
a baseline taken in the same run:
  * startup:  ``aml-console tui --view clients`` in a tmux pane (120x40), from the process'
              start (a timestamp the pane's shell writes just before ``exec``) to the status
              badge showing "● live" on screen, against ``aml-console --help``'s whole run;
  * views:    one refresh of every panel of a view (its ``console.views`` fetch) against the
              slowest of the view's queries and reads, each timed alone (the floor of a fetch
              that runs them all at once); the sum of them is what reading in turn would cost;
  * scale:    a Prometheus of its own (the launcher's spec, the project's rules, a temporary
              run dir, a free port) scraping a synthetic exporter of N clients' counters and
              scores every 5 s; once the recorded series exist and their 1 m windows are full,
              ``fetch_clients`` refreshes and each of its queries alone at every N, and the
              peak RSS of the real Textual app (headless, ``run_test``, Clients view) at each N.
Medians throughout; ratios are what to compare across machines, the absolute times are not.
Everything started here listens on 127.0.0.1 and is stopped on exit, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gzip
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from console.adapters.backends import Backends
from console.adapters.prometheus import PrometheusClient
from console.config import Settings, load_settings
from console.errors import ConsoleError
from console.lab import scrape, services
from console.views import queries as q
from console.views.alerts import fetch_alerts
from console.views.clients import ClientsSnapshot, fetch_clients
from console.views.mitigations import _registry_changes, fetch_mitigations
from console.views.models import fetch_models

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "configs" / "prometheus"
LIVE = "● live"
"""What the status badge shows once a view has data (console/tui/widgets/status.py)."""
FAILED = ("✖ ERROR", "◌ STALE", "○ no data")
SUB_PANELS = ("policy store",)
"""Status lines of a source beside the view's own (the Clients view's policy store): their
"● live" is not the view's data."""
Call = Callable[[], Awaitable[object]]


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 2)


# --- startup: first live frame in a terminal against --help --------------------------------


class Tmux:
    """A tmux server of our own, its socket in ``directory`` (tmux leaves it behind)."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "tmux.sock"

    def __call__(self, *args: str) -> str:
        argv = ["tmux", "-S", str(self.socket), "-f", "/dev/null", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        return done.stdout

    def kill_server(self) -> None:
        self("kill-server")


def _help_s(aml_console: str) -> float:
    start = time.perf_counter()
    subprocess.run([aml_console, "--help"], capture_output=True, check=True, timeout=60, cwd=REPO)
    return time.perf_counter() - start


def _tui_first_live_s(tmux: Tmux, aml_console: str, config: Path, stamp: Path) -> float:
    session = f"tui-{uuid.uuid4().hex[:8]}"
    tui = shlex.join([aml_console, "tui", "--config", str(config), "--view", "clients"])
    shell = f"cd {shlex.quote(str(REPO))} && date +%s.%N > {shlex.quote(str(stamp))} && exec {tui}"
    stamp.unlink(missing_ok=True)
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", shell)
    try:
        deadline = time.monotonic() + 60
        screen = ""
        while time.monotonic() < deadline:
            screen = tmux("capture-pane", "-p", "-t", session)
            badges = [ln for ln in screen.splitlines() if not any(p in ln for p in SUB_PANELS)]
            if any(LIVE in line for line in badges):
                return time.time() - float(stamp.read_text())
            if any(word in line for line in badges for word in FAILED):
                raise SystemExit(f"the TUI shows no live data:\n{screen}")
            time.sleep(0.02)
        raise SystemExit(f"no {LIVE!r} on screen within 60 s:\n{screen}")
    finally:
        tmux("kill-session", "-t", session)


def startup(config: Path, starts: int) -> dict[str, Any]:
    aml_console = shutil.which("aml-console")
    if aml_console is None or shutil.which("tmux") is None:
        raise SystemExit("needs aml-console on PATH (pip install -e .) and tmux")
    helps, tuis = [], []
    with tempfile.TemporaryDirectory(prefix="bench-tui-") as tmp:
        tmux, stamp = Tmux(Path(tmp)), Path(tmp) / "started"
        try:
            _help_s(aml_console)  # warm up: page cache, bytecode
            _tui_first_live_s(tmux, aml_console, config, stamp)
            for _ in range(starts):  # interleaved, so both see the same noise
                helps.append(_help_s(aml_console))
                tuis.append(_tui_first_live_s(tmux, aml_console, config, stamp))
        finally:
            tmux.kill_server()
    return {
        "runs": starts,
        "help_median_ms": _median_ms(helps),
        "tui_first_live_frame_median_ms": _median_ms(tuis),
        "ratio_first_live_frame_vs_help": round(
            statistics.median(tuis) / statistics.median(helps), 2
        ),
    }


# --- views: one refresh against its slowest query alone --------------------------------------


def _clients_calls(sources: Backends) -> dict[str, Call]:
    prom = sources.prometheus
    instant = q.CLIENT_INSTANT
    calls: dict[str, Call] = {pq.key: _instant(prom, pq.promql) for pq in instant}
    calls[q.CLIENT_HEATMAP.key] = _range(
        prom, q.CLIENT_HEATMAP, q.HEATMAP_WINDOW_S, q.HEATMAP_STEP_S
    )
    calls["policy.blocks"] = sources.policy.list_blocks
    calls["policy.budgets"] = sources.policy.list_budgets
    return calls


def _models_calls(sources: Backends) -> dict[str, Call]:
    prom = sources.prometheus
    instant = q.MODEL_INSTANT
    calls: dict[str, Call] = {pq.key: _instant(prom, pq.promql) for pq in instant}
    calls[q.MODEL_CONFIDENCE.key] = _range(
        prom, q.MODEL_CONFIDENCE, q.CONFIDENCE_WINDOW_S, q.CONFIDENCE_STEP_S
    )
    for name in sources.settings.models.served:
        calls[f"registry.model.{name}"] = _bind(sources.registry.get_model, name)
        calls[f"registry.versions.{name}"] = _bind(sources.registry.list_versions, name)
    return calls


def _instant(prom: PrometheusClient, expr: str) -> Call:
    return lambda: prom.query(expr)


def _range(prom: PrometheusClient, pq: q.PanelQuery, window_s: int, step_s: int) -> Call:
    """The view's range query: ``window_s`` up to now, as the view asks it."""

    async def call() -> object:
        end = time.time()
        return await prom.query_range(pq.promql, end - window_s, end, step_s)

    return call


def _bind(method: Callable[[str], Awaitable[object]], name: str) -> Call:
    return lambda: method(name)


def _view_calls(sources: Backends) -> dict[str, tuple[Call, dict[str, Call]]]:
    """Per view: its fetch, and every query or read the fetch makes (the same calls)."""
    return {
        "clients": (lambda: fetch_clients(sources), _clients_calls(sources)),
        "models": (lambda: fetch_models(sources), _models_calls(sources)),
        "alerts": (
            lambda: fetch_alerts(sources),
            {
                "alertmanager.alerts": sources.alertmanager.alerts,
                "alertmanager.silences": sources.alertmanager.silences,
            },
        ),
        "mitigations": (
            lambda: fetch_mitigations(sources),
            {
                "policy.blocks": sources.policy.list_blocks,
                "policy.budgets": sources.policy.list_budgets,
                "audit.registry_changes": lambda: asyncio.to_thread(_registry_changes, sources),
            },
        ),
    }


async def _timed(call: Call) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


async def _views(settings: Settings, refreshes: int, warmup: int = 3) -> dict[str, Any]:
    sources = Backends(settings)
    fetch_times: dict[str, list[float]] = {}
    alone: dict[str, dict[str, list[float]]] = {}
    try:
        for i in range(warmup + refreshes):
            for view, (fetch, calls) in _view_calls(sources).items():
                singles = {name: await _timed(call) for name, call in calls.items()}
                whole = await _timed(fetch)
                if i >= warmup:
                    fetch_times.setdefault(view, []).append(whole)
                    for name, took in singles.items():
                        alone.setdefault(view, {}).setdefault(name, []).append(took)
    finally:
        await sources.aclose()
    return {view: _view_report(fetch_times[view], alone[view]) for view in fetch_times}


def _view_report(fetch: list[float], alone: dict[str, list[float]]) -> dict[str, Any]:
    medians = {name: _median_ms(times) for name, times in alone.items()}
    slowest = max(medians, key=lambda name: medians[name])
    return {
        "refresh_median_ms": _median_ms(fetch),
        "slowest_alone": slowest,
        "slowest_alone_median_ms": medians[slowest],
        "sum_alone_median_ms": round(sum(medians.values()), 2),
        "ratio_refresh_vs_slowest_alone": round(_median_ms(fetch) / medians[slowest], 2),
        "alone_median_ms": medians,
    }


# --- scale: the Clients view at N client series ---------------------------------------------


class SyntheticExporter:
    """``/metrics`` of ``clients`` clients of model digits: an answered-requests counter that
    grows at a per-client rate (0.2-5.2/s), an extraction score (0-0.14: no alert), and a
    flagged-inputs counter for every tenth client. Prometheus asks for gzip; it gets gzip."""

    def __init__(self) -> None:
        self.clients = 0
        self.started = time.monotonic()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = exporter.body()
                zipped = "gzip" in self.headers.get("Accept-Encoding", "")
                if zipped:
                    body = gzip.compress(body, compresslevel=1)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                if zipped:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)  # a scrape that timed out hung up

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def body(self) -> bytes:
        t = time.monotonic() - self.started
        requests, scores, flagged = _families(self.clients)
        lines = ["# TYPE aml_requests_total counter"]
        lines += [f"{series} {rate * t:.2f}" for series, rate in requests]
        lines += [scores, "# TYPE aml_flagged_total counter"]
        lines += [f"{series} {rate * t:.2f}" for series, rate in flagged]
        return ("\n".join(lines) + "\n").encode()

    def __enter__(self) -> SyntheticExporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@functools.lru_cache(maxsize=2)
def _families(n: int) -> tuple[list[tuple[str, float]], str, list[tuple[str, float]]]:
    """What does not change between scrapes: each counter series with its rate, and the
    (constant) score gauges as one block."""
    labels = [f'model="digits",version="2",client="c{i:06d}"' for i in range(n)]
    rates = [0.2 + (i * 7919 % 1000) / 200 for i in range(n)]
    requests = [
        (f'aml_requests_total{{{la},outcome="ok"}}', r) for la, r in zip(labels, rates, strict=True)
    ]
    scores = "\n".join(
        ["# TYPE aml_client_extraction_score gauge"]
        + [
            f"aml_client_extraction_score{{{la}}} {(i * 104729 % 1000) * 0.00014:.4f}"
            for i, la in enumerate(labels)
        ]
    )
    flagged = [(f"aml_flagged_total{{{labels[i]}}}", rates[i] * 0.02) for i in range(0, n, 10)]
    return requests, scores, flagged


@contextlib.contextmanager
def own_prometheus(lab: Settings) -> Iterator[Settings]:
    """Settings whose Prometheus is one started for the benchmark (the launcher's spec: 5 s
    scrape and evaluation, the project's rules, file_sd targets) in a temporary run dir; no
    Alertmanager, so synthetic alerts reach nobody. Stopped and removed on exit."""
    from bench_support import free_port  # not at the top: the TUI driver needs no numpy

    run_dir = Path(tempfile.mkdtemp(prefix="bench-tui-prometheus-"))
    settings = lab.model_copy(
        update={
            "run_dir": run_dir,
            "prometheus": lab.prometheus.model_copy(
                update={"url": f"http://127.0.0.1:{free_port()}"}
            ),
            "alertmanager": lab.alertmanager.model_copy(update={"url": "http://127.0.0.1"}),
        }
    )
    try:
        services.up(settings, ["prometheus"], seed=False, rules_dir=RULES)
        yield settings
    finally:
        services.down(settings, ["prometheus"])
        shutil.rmtree(run_dir, ignore_errors=True)


SERIES_READY = (
    "count(aml:client_requests:rate1m)",
    "count(aml:client_refused:ratio_rate1m)",
    "count(max by (model, client) (aml_client_extraction_score))",
)


async def _wait_for_series(prom: PrometheusClient, n: int, settle_s: float) -> float:
    """Seconds until every recorded per-client series exists for the ``n`` clients, then
    ``settle_s`` more (full 1 m rate windows behind each recorded sample)."""
    start = time.monotonic()
    while not await _counts_are(prom, n):
        if time.monotonic() - start > 300:
            raise SystemExit(f"the recorded series of {n} clients did not appear within 300 s")
        await asyncio.sleep(1)
    ready = time.monotonic() - start
    await asyncio.sleep(settle_s)
    return ready


async def _counts_are(prom: PrometheusClient, n: int) -> bool:
    try:
        counts = [await prom.query(expr) for expr in SERIES_READY]
    except ConsoleError:  # a busy engine times out: ask again
        return False
    return all(r.samples and r.samples[0].value == n for r in counts)


async def _clients_at(
    settings: Settings, n: int, refreshes: int, settle_s: float
) -> dict[str, Any]:
    sources = Backends(settings)
    try:
        ready_s = await _wait_for_series(sources.prometheus, n, settle_s)
        calls = _clients_calls(sources)
        calls["engine.count_all_series"] = _instant(
            sources.prometheus, "count(aml:client_requests:rate1m)"
        )  # what reading every series alone costs the engine: no view can go below it
        alone = {name: await _repeat(call, refreshes) for name, call in calls.items()}
        refresh = await _repeat(lambda: fetch_clients(sources), refreshes)
        rows = await _rows(sources)
        engine = {name: await _scalar(sources.prometheus, expr) for name, expr in ENGINE.items()}
    finally:
        await sources.aclose()
    stage: dict[str, Any] = {
        "series_ready_after_s": round(ready_s, 1),
        "refresh_median_ms": refresh.median_ms,
        "refresh_answered": refresh.answered,
        "rows": rows,
        "alone_median_ms": {name: timing.median_ms for name, timing in alone.items()},
        "engine": engine,
    }
    errors = {name: t.error for name, t in [*alone.items(), ("refresh", refresh)] if t.error}
    if errors:
        stage["errors"] = errors
    floor = alone["engine.count_all_series"].median_ms
    if refresh.median_ms is not None and floor is not None:
        stage["ratio_refresh_vs_engine_floor"] = round(refresh.median_ms / floor, 2)
    return stage


@dataclasses.dataclass
class Timing:
    times: list[float]
    """Of the calls that answered."""
    tries: int
    error: str | None
    """How many calls failed (warm-up ones included) and why the first did."""

    @property
    def ok(self) -> bool:
        return bool(self.times)

    @property
    def median_ms(self) -> float | None:
        return _median_ms(self.times) if self.times else None

    @property
    def answered(self) -> str:
        return f"{len(self.times)}/{self.tries}"


async def _repeat(call: Call, times: int, warmup: int = 2) -> Timing:
    """``times`` timings of ``call`` after ``warmup`` calls; a call that fails (the engine
    timed out) is counted, not timed."""
    answered, failures = [], []
    for i in range(warmup + times):
        try:
            took = await _timed(call)
        except ConsoleError as exc:
            failures.append(str(exc)[:200])
            continue
        if i >= warmup:
            answered.append(took)
    error = f"{len(failures)} failed, first: {failures[0]}" if failures else None
    return Timing(answered, times, error)


async def _rows(sources: Backends) -> int:
    try:
        return len((await fetch_clients(sources)).rows)
    except ConsoleError:
        return 0


ENGINE = {
    "rule_group_last_duration_max_s": "max(prometheus_rule_group_last_duration_seconds)",
    "rule_group_iterations_missed_1m": (
        "sum(increase(prometheus_rule_group_iterations_missed_total[1m]))"
    ),
    "synthetic_scrape_duration_s": 'max(scrape_duration_seconds{service="synthetic"})',
    "head_series": "max(prometheus_tsdb_head_series)",
}
"""How busy the benchmark's Prometheus is: a rule group that takes longer than the 5 s
evaluation interval misses iterations, and every query then competes with it."""


async def _scalar(prom: PrometheusClient, expr: str) -> float | str:
    try:
        result = await prom.query(expr)
    except ConsoleError as exc:
        return f"failed: {str(exc)[:120]}"
    return round(result.samples[0].value, 3) if result.samples else "no data"


def _tui_peak(config: Path, settings: Settings, refreshes: int) -> dict[str, Any]:
    """The real app, headless, in a process of its own on the Clients view."""
    env = {**os.environ, "CONSOLE_PROMETHEUS__URL": settings.prometheus.url}
    argv = [sys.executable, __file__, "--config", str(config), "--tui-driver", str(refreshes)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"the TUI driver failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def scale(
    config: Path, sizes: list[int], refreshes: int, settle_s: float, tui_refreshes: int = 5
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    lab = load_settings(config)
    with SyntheticExporter() as exporter, own_prometheus(lab) as settings:
        scrape.register_target(settings, "synthetic", exporter.address, {"service": "synthetic"})
        for n in sorted(sizes):
            exporter.clients = n
            stage = asyncio.run(_clients_at(settings, n, refreshes, settle_s))
            stage["tui"] = _tui_peak(config, settings, tui_refreshes)
            out[f"clients_{n}"] = stage
    smallest = out[f"clients_{min(sizes)}"]
    for n in sorted(sizes)[1:]:
        stage = out[f"clients_{n}"]
        if stage["refresh_median_ms"] and smallest["refresh_median_ms"]:
            ratio = stage["refresh_median_ms"] / smallest["refresh_median_ms"]
            out[f"ratio_refresh_{n}_vs_{min(sizes)}"] = round(ratio, 2)  # answered ones only
        peak = stage["tui"]["peak_rss_mib"] / smallest["tui"]["peak_rss_mib"]
        out[f"ratio_tui_peak_rss_{n}_vs_{min(sizes)}"] = round(peak, 2)
    return out


def _drive_tui(config: Path, refreshes: int) -> dict[str, Any]:
    """Run in the driver process: the Clients view for ``refreshes`` refreshes, then the
    process' peak RSS (imports, app, every snapshot it held)."""
    from console.tui.app import ConsoleApp

    settings = load_settings(config)
    app = ConsoleApp(settings, Backends(settings), start="clients", refresh_s=0.5)

    async def drive() -> dict[str, Any]:
        async with app.run_test(size=(120, 40)) as pilot:
            view = app.view("clients")
            deadline = time.monotonic() + 120
            while view.refreshes < refreshes and time.monotonic() < deadline:
                await pilot.pause(0.1)
            snapshot = view.snapshot
            return {
                "refreshes": view.refreshes,
                "badge": view.badge.panel.state,
                "error": view.badge.panel.error,
                "rows": len(snapshot.rows) if isinstance(snapshot, ClientsSnapshot) else 0,
            }

    result = asyncio.run(drive())
    result["peak_rss_mib"] = round(_vm_hwm_kib() / 1024, 1)
    return result


def _vm_hwm_kib() -> int:
    """This process' peak RSS. Not ``getrusage``'s ``ru_maxrss``: Linux carries it over fork
    and exec, so it would report the benchmark's own peak (the exporter's 100,000 series)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc/self/status (Linux only)")


# --- all of it -------------------------------------------------------------------------------


def run(
    config: Path,
    starts: int = 5,
    refreshes: int = 20,
    sizes: tuple[int, ...] = (100, 10_000, 100_000),
    scale_refreshes: int = 10,
    settle_s: float = 60.0,
) -> dict[str, Any]:
    settings = load_settings(config)
    services.up(settings)
    return {
        "startup": startup(config, starts),
        "views": asyncio.run(_views(settings, refreshes)),
        "clients_scale": scale(config, list(sizes), scale_refreshes, settle_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--refreshes", type=int, default=20)
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--scale-refreshes", type=int, default=10)
    parser.add_argument("--settle-s", type=float, default=60.0)
    parser.add_argument("--tui-driver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = args.config.resolve()
    if args.tui_driver is not None:
        result = _drive_tui(config, args.tui_driver)
    else:
        sizes = tuple(int(n) for n in args.sizes.split(","))
        result = run(
            config, args.starts, args.refreshes, sizes, args.scale_refreshes, args.settle_s
        )
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
