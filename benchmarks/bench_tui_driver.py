"""The real app for ``bench_tui_scale.py``, in a process of its own: headless (Textual's
``run_test``, 120x40) on the Clients view for a number of refreshes, then the process' peak
RSS (imports, app, every snapshot it held) as JSON on stdout.

    python benchmarks/bench_tui_driver.py --config CONFIG --engine ENGINE [--refreshes 5]

The engine's URLs come from the environment (``CONSOLE_PROMETHEUS__URL`` and the like)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, cast

from console.adapters.backends import Backends, MetricsEngine
from console.config import load_settings


def drive_tui(config: Path, engine: MetricsEngine, refreshes: int) -> dict[str, Any]:
    from console.tui.app import ConsoleApp

    settings = load_settings(config)
    app = ConsoleApp(settings, Backends(settings, metrics=engine), start="clients", refresh_s=0.5)

    async def drive() -> dict[str, Any]:
        async with app.run_test(size=(120, 40)) as pilot:
            view = app.view("clients")
            deadline = time.monotonic() + 120
            while view.refreshes < refreshes and time.monotonic() < deadline:
                await pilot.pause(0.1)
            snapshot: Any = view.snapshot
            return {
                "refreshes": view.refreshes,
                "badge": view.badge.panel.state,
                "error": view.badge.panel.error,
                "rows": len(snapshot.rows) if snapshot is not None else 0,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--engine", choices=["prometheus", "victoria-metrics"], required=True)
    parser.add_argument("--refreshes", type=int, default=5)
    args = parser.parse_args()
    result = drive_tui(args.config.resolve(), cast(MetricsEngine, args.engine), args.refreshes)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
