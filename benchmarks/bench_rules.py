"""The shipped recording rules at 10,000 and 100,000 clients: each rule group's evaluation time
with the shipped rules and with the same rules less the bounded group (what the console read
before it), and how much smaller the console's per-client answer is once it reads the listed
clients only.

    python benchmarks/bench_rules.py [--config configs/lab.toml] [--sizes 10000,100000]
        [--samples 12] [--settle-s 70]

Two Prometheus of their own (the launcher's spec: 5 s scrape and evaluation, file_sd targets,
temporary run dirs, free ports, no Alertmanager), one loading aml-recording.yml without
its bounded group and one the whole file (each beside aml-alerts.yml), scrape the same synthetic
exporter at the same time, so both see the same load and noise. At each N, once every recorded
per-client series exists and its 1 m window is full, ``evaluationTime`` of every group is read
from /api/v1/rules at ``--samples`` successive evaluations (and each rule's of the bounded
group, ``aml-clients-bounded/<rule>``); medians, and new / old ratios.
The exporter is ``bench_tui_exporter.SyntheticExporter``: N clients of model digits at
0.2-5.2 requests/s, a score gauge, flagged and throttled counters for some, and one slow
attacker (0.1 requests/s, score 0.9) that the listed clients must include.
Everything listens on 127.0.0.1 and is stopped on exit, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from bench_tui_exporter import ATTACKER, SyntheticExporter

from console.config import Settings, load_settings
from console.lab import scrape, services

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "configs" / "prometheus"
RECORDING = "aml-recording.yml"
LISTED = "aml:client_listed:rate1m"
EVERY_CLIENT = "aml:client_requests:rate1m"
BOUNDED = "aml-clients-bounded"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rules_dirs(tmp: Path) -> dict[str, Path]:
    """``old``: the shipped recording rules without the bounded group (what the console read
    before it); ``new``: the shipped rules; the same alerts beside both."""
    shipped = yaml.safe_load((RULES / RECORDING).read_text())
    without = {"groups": [g for g in shipped["groups"] if g["name"] != BOUNDED]}
    dirs = {"old": tmp / "rules-old", "new": tmp / "rules-new"}
    for directory in dirs.values():
        directory.mkdir()
        shutil.copy(RULES / "aml-alerts.yml", directory / "aml-alerts.yml")
    (dirs["old"] / RECORDING).write_text(yaml.safe_dump(without, sort_keys=False))
    shutil.copy(RULES / RECORDING, dirs["new"] / RECORDING)
    return dirs


@contextlib.contextmanager
def own_prometheus(lab: Settings, rules_dir: Path, tmp: Path, name: str) -> Iterator[Settings]:
    """Settings of a Prometheus started for the benchmark with ``rules_dir``; stopped on exit."""
    settings = lab.model_copy(
        update={
            "run_dir": tmp / f"run-{name}",
            "prometheus": lab.prometheus.model_copy(
                update={"url": f"http://127.0.0.1:{_free_port()}"}
            ),
            "alertmanager": lab.alertmanager.model_copy(update={"url": "http://127.0.0.1"}),
        }
    )
    try:
        services.up(settings, ["prometheus"], seed=False, rules_dir=rules_dir)
        yield settings
    finally:
        services.down(settings, ["prometheus"])


def _get(url: str, path: str, **params: str) -> Any:
    response = httpx.get(f"{url}{path}", params=params, timeout=60, trust_env=False)
    response.raise_for_status()
    return response.json()["data"]


def _count(url: str, expr: str) -> float | None:
    try:
        result = _get(url, "/api/v1/query", query=f"count({expr})")["result"]
    except httpx.HTTPError:
        return None  # a busy engine timed out: ask again
    return float(result[0]["value"][1]) if result else None


def _wait_ready(urls: dict[str, str], n: int, settle_s: float) -> float:
    """Seconds until both engines hold the recorded rate of all ``n`` clients, then
    ``settle_s`` more: full 1 m windows behind every recorded sample."""
    start = time.monotonic()
    while not all(_count(url, EVERY_CLIENT) == n for url in urls.values()):
        if time.monotonic() - start > 300 + n / 200:
            raise SystemExit(f"the recorded rates of {n} clients did not appear in time")
        time.sleep(1)
    ready = time.monotonic() - start
    time.sleep(settle_s)
    return ready


def _group_times(url: str) -> dict[str, tuple[str, float]]:
    """Per group, and per rule of the bounded group (``group/rule``): the last evaluation's
    start and its evaluationTime (s)."""
    out = {}
    for g in _get(url, "/api/v1/rules")["groups"]:
        out[g["name"]] = (g["lastEvaluation"], float(g["evaluationTime"]))
        if g["name"] == BOUNDED:
            for r in g["rules"]:
                out[f"{g['name']}/{r['name']}"] = (g["lastEvaluation"], float(r["evaluationTime"]))
    return out


def _sample_groups(urls: dict[str, str], samples: int) -> dict[str, dict[str, list[float]]]:
    """``samples`` distinct evaluations of every group of every engine."""
    seen: dict[str, dict[str, dict[str, float]]] = {name: {} for name in urls}
    deadline = time.monotonic() + samples * 5 * 3 + 60
    while time.monotonic() < deadline:
        for name, url in urls.items():
            for group, (at, took) in _group_times(url).items():
                seen[name].setdefault(group, {})[at] = took
        if all(len(g) >= samples for per in seen.values() for g in per.values()):
            break
        time.sleep(1)
    return {
        name: {group: list(times.values())[-samples:] for group, times in per.items()}
        for name, per in seen.items()
    }


def _answer(url: str, expr: str) -> dict[str, Any]:
    start = time.perf_counter()
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=60, trust_env=False)
    took = time.perf_counter() - start
    response.raise_for_status()
    result = response.json()["data"]["result"]
    return {
        "series": len(result),
        "bytes": len(response.content),
        "ms": round(took * 1e3, 1),
        "clients": {s["metric"].get("client") for s in result},
    }


def _stage(urls: dict[str, str], n: int, samples: int, settle_s: float) -> dict[str, Any]:
    ready_s = _wait_ready(urls, n, settle_s)
    times = _sample_groups(urls, samples)
    groups: dict[str, Any] = {}
    for group in sorted(set(times["old"]) | set(times["new"])):
        old, new = times["old"].get(group), times["new"].get(group)
        row: dict[str, Any] = {}
        if old:
            row["old_median_ms"] = round(statistics.median(old) * 1e3, 1)
        if new:
            row["new_median_ms"] = round(statistics.median(new) * 1e3, 1)
            row["new_max_ms"] = round(max(new) * 1e3, 1)
        if old and new:
            row["ratio_new_vs_old"] = round(statistics.median(new) / statistics.median(old), 2)
        groups[group] = row
    old_total = sum(statistics.median(t) for g, t in times["old"].items() if "/" not in g)
    new_total = sum(statistics.median(t) for g, t in times["new"].items() if "/" not in g)
    listed, every = _answer(urls["new"], LISTED), _answer(urls["new"], EVERY_CLIENT)
    return {
        "series_ready_after_s": round(ready_s, 1),
        "evaluations_sampled": samples,
        "groups": groups,
        "all_groups_old_ms": round(old_total * 1e3, 1),
        "all_groups_new_ms": round(new_total * 1e3, 1),
        "ratio_all_groups_new_vs_old": round(new_total / old_total, 2),
        "answer": {
            LISTED: {k: v for k, v in listed.items() if k != "clients"},
            EVERY_CLIENT: {k: v for k, v in every.items() if k != "clients"},
            "ratio_series_listed_vs_every_client": round(listed["series"] / every["series"], 5),
            "ratio_bytes_listed_vs_every_client": round(listed["bytes"] / every["bytes"], 5),
            "slow_attacker_listed": ATTACKER in listed["clients"],
        },
    }


def run(config: Path, sizes: list[int], samples: int, settle_s: float) -> dict[str, Any]:
    lab = load_settings(config)
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-rules-")))
        exporter = stack.enter_context(SyntheticExporter())
        urls = {}
        for name, rules_dir in _rules_dirs(tmp).items():
            settings = stack.enter_context(own_prometheus(lab, rules_dir, tmp, name))
            scrape.register_target(
                settings, "synthetic", exporter.address, {"service": "synthetic"}
            )
            urls[name] = str(settings.prometheus.url).rstrip("/")
        for n in sorted(sizes):
            exporter.clients = n
            out[f"clients_{n}"] = _stage(urls, n, samples, settle_s)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "lab.toml")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--settle-s", type=float, default=70.0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    result = run(args.config, sizes, args.samples, args.settle_s)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
