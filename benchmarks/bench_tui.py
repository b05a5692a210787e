"""The on-call TUI: time to the first live frame, one refresh of each view against its slowest
read, and the Clients view at 100 to 100,000 client series on Prometheus and VictoriaMetrics.

    python benchmarks/bench_tui.py [--config configs/lab.toml] [--starts 5] [--refreshes 20]
        [--sizes 100,10000,100000] [--engines prometheus,victoria-metrics]
        [--scale-refreshes 10] [--settle-s 60] [--skip startup,views,scale] [--keep-lab]

Brings up (or reuses) the config's lab with the project's launcher and waits for its first
scrapes (the Clients view lists a client, the models' request rate is recorded), as a person's
first look would, then measures, each against a baseline taken in the same run:
  * startup:  ``aml-console tui --view clients`` in a tmux pane (120x40), from the process'
              start (a timestamp the pane's shell writes just before ``exec``) to the status
              badge showing "● live" on screen, against ``aml-console --help``'s whole run;
  * views:    one refresh of every view of the catalog (its ``fetch_<view>``) against the
              slowest of the reads that fetch makes, each timed alone (the floor of a fetch
              that runs them all at once); the reads are recorded from the fetch itself (every
              adapter call and every blocking read handed to a thread), so they are the view's
              (``bench_tui_reads.py``);
  * scale:    per engine, one of its own (the launcher's specs: Prometheus, or VictoriaMetrics
              and vmalert; the project's rules; a temporary run dir; free ports) scraping a
              synthetic exporter of N clients every 5 s (``bench_tui_exporter.py``), one of
              them a slow attacker (a rate below any top-20 by rate, extraction score 0.9);
              once every client is counted, every series the rules' bounded group
              (``aml-clients-bounded``) records and the view reads exists, the 1 m windows are
              full and every rule group has run since: ``fetch_clients`` refreshes and each of
              its reads alone, whether the attacker is in the view's first 10 rows, each rule
              group's evaluation time as the ruler reports it (Prometheus' or vmalert's
              ``/api/v1/rules``), the engine's rule errors (VictoriaMetrics'
              ``-search.maxUniqueTimeseries`` and the like), and the peak RSS of the real
              Textual app (headless, Clients view; ``bench_tui_driver.py``). See
              ``bench_tui_scale.py`` and ``bench_tui_rules.py``.
Medians throughout; ratios are what to compare across machines, the absolute times are not.
Everything started here listens on 127.0.0.1 and is stopped on exit, also on error or Ctrl-C;
so are the lab's services this run started, unless ``--keep-lab`` (a lab that was up stays up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from bench_tui_reads import against_slowest, interleaved, median_ms, recorded_reads, view_fetch
from bench_tui_scale import scale

from console.adapters.backends import Backends, MetricsEngine
from console.config import Settings, load_settings
from console.errors import ConsoleError
from console.lab import services
from console.views.catalog import VIEW_NAMES
from console.views.clients import fetch_clients

REPO = Path(__file__).resolve().parents[1]
LIVE = "● live"
"""What the status badge shows once a view has data (console/tui/widgets/status.py)."""
FAILED = ("✖ ERROR", "◌ STALE", "○ no data")
SUB_PANELS = ("policy store",)
"""Status lines of a source beside the view's own (the Clients view's policy store): their
"● live" is not the view's data."""
ENGINES: tuple[MetricsEngine, ...] = ("prometheus", "victoria-metrics")
PARTS = ("startup", "views", "scale")


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
        "help_median_ms": median_ms(helps),
        "tui_first_live_frame_median_ms": median_ms(tuis),
        "ratio_first_live_frame_vs_help": round(
            statistics.median(tuis) / statistics.median(helps), 2
        ),
    }


RECORDED_FIRST = ("aml:client_requests:rate1m", "aml:requests:rate1m")
"""Rates need two scrapes and an evaluation: what a cold lab lacks for its first seconds."""


async def wait_for_lab_data(settings: Settings, timeout_s: float = 180) -> float:
    """Seconds until a freshly started lab has what a first look shows: the Clients view lists
    a client and the per-client and per-model request rates are recorded (on a cold lab some
    8 s after ``lab up`` returns: until then the TUI shows "no data")."""
    start = time.monotonic()
    sources = Backends(settings)
    try:
        while True:
            with contextlib.suppress(ConsoleError):  # an engine still starting
                rows = len((await fetch_clients(sources)).rows)
                rates = [await sources.prometheus.query(expr) for expr in RECORDED_FIRST]
                if rows and all(r.samples for r in rates):
                    return round(time.monotonic() - start, 1)
            if time.monotonic() - start > timeout_s:
                raise SystemExit(f"the lab's views have no data {timeout_s:.0f} s after lab up")
            await asyncio.sleep(1)
    finally:
        await sources.aclose()


# --- views: one refresh against its slowest read alone ---------------------------------------


async def views(settings: Settings, refreshes: int) -> dict[str, Any]:
    """Every view of the catalog: its refresh and each of its reads alone, interleaved."""
    sources = Backends(settings)
    out: dict[str, Any] = {}
    try:
        for view in VIEW_NAMES:
            fetch = view_fetch(view)
            recorded = await recorded_reads(sources, fetch)
            whole = functools.partial(fetch, sources)
            refresh, alone = await interleaved(whole, recorded.reads, refreshes, warmup=3)
            out[view] = against_slowest(refresh, alone)
            if recorded.failed:
                out[view]["fetch_failed"] = recorded.failed
    finally:
        await sources.aclose()
    return out


# --- all of it -------------------------------------------------------------------------------


@contextlib.contextmanager
def lab_up(settings: Settings, keep: bool = False) -> Iterator[float]:
    """The config's lab up (the launcher starts what is not running), for the seconds until its
    first scrapes show; the services started here are stopped on exit unless ``keep``."""
    statuses = services.status(settings, settings.lab.services)
    running = {status.name for status in statuses if status.state == "running"}
    started = [name for name in settings.lab.services if name not in running]
    try:
        services.up(settings)
        yield asyncio.run(wait_for_lab_data(settings))
    finally:
        if started and not keep:
            services.down(settings, started)


def run(
    config: Path,
    starts: int = 5,
    refreshes: int = 20,
    sizes: tuple[int, ...] = (100, 10_000, 100_000),
    scale_refreshes: int = 10,
    settle_s: float = 60.0,
    engines: tuple[MetricsEngine, ...] = ENGINES,
    skip: tuple[str, ...] = (),
    keep_lab: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    settings = load_settings(config)
    # The scale stages too: the Clients view reads the lab's policy store and gateway there.
    with lab_up(settings, keep_lab) as first_data_s:
        out["lab_data_after_up_s"] = first_data_s
        if "startup" not in skip:
            out["startup"] = startup(config, starts)
        if "views" not in skip:
            out["views"] = asyncio.run(views(settings, refreshes))
        if "scale" not in skip:
            out["clients_scale"] = {
                engine: scale(config, list(sizes), scale_refreshes, settle_s, engine)
                for engine in engines
            }
    return out


def _engines(text: str) -> tuple[MetricsEngine, ...]:
    chosen = tuple(e.strip() for e in text.split(",") if e.strip())
    unknown = [e for e in chosen if e not in ENGINES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"engines are {', '.join(ENGINES)}, not {text!r}")
    return cast(tuple[MetricsEngine, ...], chosen)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(n) for n in text.split(",") if n.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes are client counts such as 100,10000: {text!r}")
    return sizes


def _parts(text: str) -> tuple[str, ...]:
    chosen = tuple(p.strip() for p in text.split(",") if p.strip())
    if any(p not in PARTS for p in chosen):
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS)}, not {text!r}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--refreshes", type=int, default=20)
    parser.add_argument("--sizes", type=_sizes, default=(100, 10_000, 100_000))
    parser.add_argument("--engines", type=_engines, default=ENGINES)
    parser.add_argument("--scale-refreshes", type=int, default=10)
    parser.add_argument("--settle-s", type=float, default=60.0)
    parser.add_argument("--skip", type=_parts, default=(), help=f"any of {', '.join(PARTS)}")
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab's services up")
    args = parser.parse_args()
    try:
        result = run(
            args.config.resolve(),
            args.starts,
            args.refreshes,
            args.sizes,
            args.scale_refreshes,
            args.settle_s,
            args.engines,
            args.skip,
            args.keep_lab,
        )
    except ConsoleError as exc:  # a config that does not load, a lab that does not come up
        raise SystemExit(f"bench_tui: {exc}") from None
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
