"""What a command costs before it does anything: the wall time of ``aml-console --help``,
``aml-console get alerts`` and ``aml-console doctor`` against the running lab, each against
``python3 -c pass`` (the interpreter alone) measured in the same run.

    python benchmarks/bench_startup.py [--config FILE] [--runs 7]

The lab must be up (``aml-console lab up``); without it ``get`` and ``doctor`` measure their
error paths, which the output says (their exit codes are printed). Medians of ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _median_s(command: list[str], runs: int) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        code = done.returncode
    return statistics.median(times), code


def run(config: Path | None = None, runs: int = 7) -> dict[str, Any]:
    script = shutil.which("aml-console")
    base = [script] if script else [sys.executable, "-m", "console"]
    if config is not None:
        base += ["--config", str(config)]
    baseline, _ = _median_s([sys.executable, "-c", "pass"], runs)
    results: dict[str, Any] = {"python_c_pass_s": round(baseline, 3)}
    for name, args in (
        ("help", ["--help"]),
        ("get_alerts", ["get", "alerts", "-o", "json"]),
        ("doctor", ["doctor", "-o", "json"]),
    ):
        seconds, code = _median_s([*base, *args], runs)
        results[name] = {
            "median_s": round(seconds, 3),
            "vs_python_c_pass": round(seconds / baseline, 1),
            "exit_code": code,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    sys.stdout.write(json.dumps(run(args.config, args.runs), indent=2) + "\n")


if __name__ == "__main__":
    main()
