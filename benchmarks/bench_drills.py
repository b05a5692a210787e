"""Each drill's time to detect against its floor, on the running lab:

    python benchmarks/bench_drills.py [--config configs/lab.toml] [--scenarios extraction,evasion]
                                      [--trials 2]

Brings up (or reuses) the config's lab, then runs each scenario ``--trials`` times with the
scripted responder (``aml-console drill run NAME --responder auto --output json``, a
subprocess, as CI runs it). The baseline is each drill's own detection floor (scrape interval +
rule evaluation interval + its alert's ``for:``, in the report): time to detect / floor is what
to compare across machines. ``flood`` and ``poisoning`` need the lab's 10- and 30-minute
baselines, so they are not in the default set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from statistics import median
from typing import Any

from console.config import load_settings
from console.lab import services

REPO = Path(__file__).resolve().parents[1]


def run_drill(config: Path, scenario: str) -> dict[str, Any]:
    env = {**os.environ, "CONSOLE_CONFIG": str(config.resolve())}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "console",
            "drill",
            "run",
            scenario,
            "--responder",
            "auto",
            "--wait-quiet",
            "600",
            "--output",
            "json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode not in (0, 3):  # 3: ran, not contained
        raise SystemExit(f"drill {scenario} failed: {result.stderr.strip()[-500:]}")
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def run(config: Path, scenarios: list[str], trials: int) -> dict[str, Any]:
    services.up(load_settings(config))
    out: dict[str, Any] = {}
    for scenario in scenarios:
        runs = [run_drill(config, scenario) for _ in range(trials)]
        detect = [r["time_to_detect_s"] for r in runs if r["time_to_detect_s"] is not None]
        floor = runs[0]["detection_floor_s"]
        out[scenario] = {
            "trials": trials,
            "contained": sum(1 for r in runs if r["contained"]),
            "detection_floor_s": floor,
            "time_to_detect_s": detect,
            "time_to_mitigate_s": [r["time_to_mitigate_s"] for r in runs],
            "attacker_queries_answered": [r["attacker_queries_answered"] for r in runs],
            "attacker_success": [r["attacker_success"] for r in runs],
            "benign_blocked": sum(r["benign_blocked"] for r in runs),
            "false_alerts": sum(r["false_alerts"] for r in runs),
            "ratio_time_to_detect_vs_floor_median": round(median(detect) / floor, 3)
            if detect and floor
            else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--scenarios", default="extraction,evasion")
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    result = run(args.config, [s for s in args.scenarios.split(",") if s], args.trials)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
