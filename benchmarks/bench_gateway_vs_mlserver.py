"""Throughput of the guarded lab gateway against MLServer serving the same ONNX model over V2,
the server a user would pick instead: same client, same concurrency, same run.

    python benchmarks/bench_gateway_vs_mlserver.py [--config configs/lab.toml]
        [--requests 1000] [--concurrency 8] [--rounds 3]

Needs MLServer's virtualenv (``.aml-venvs/mlserver``, made by ``.ci/install``). On the Redis
and MLflow of the config (started if they are not) it starts MLServer serving the seeded digits
champion's registry artifact (tests/replay/mlserver_runtime: onnxruntime, one thread, no
parallel workers) and, each with a run dir, key prefix and port of its own, three lab gateways
(the project's launcher) serving the same version:
  * ``gateway``: every guard, as the lab runs it: policy, feature squeezing (the config's
    squeezers), the extraction statistic, metrics, a span per request, sampling;
  * ``gateway_no_spans_samples``: the same without spans and samples (trace and sample
    locations set to URLs, which the gateway does not write to);
  * ``gateway_no_spans_samples_squeeze``: also without squeezers (the plain graph).
Then, in alternating rounds (the median of each), ``--requests`` POSTs of one V2 row each with
``--concurrency`` in flight (httpx.AsyncClient, keep-alive), and one in flight for p50/p99.
The ratio is each gateway's requests/s over MLServer's (the issue's target: >= 1.0); the
differences between the three gateways say where the gateway's time goes.
The client shares the machine's cores with the server it measures, alike for each; on a busy
machine the small differences between the gateways are within the noise (run more rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench_stack import (
    MLSERVER,
    bench_settings,
    closed_loop,
    lab_gateway,
    mlserver,
    mlserver_available,
)
from bench_support import digits_rows, infer_body

NOWHERE = "http://127.0.0.1:9/not-written"
"""A trace or sample location the gateway leaves alone: it writes only local folders."""
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "gateway": {},
    "gateway_no_spans_samples": {
        "traces": {"path": NOWHERE},
        "samples": {"path": NOWHERE},
        "gateway": {"sample_fraction": 0.0},
    },
    "gateway_no_spans_samples_squeeze": {
        "traces": {"path": NOWHERE},
        "samples": {"path": NOWHERE},
        "gateway": {"sample_fraction": 0.0},
        "detectors": {"squeezers": []},
    },
}


async def _rounds(
    urls: dict[str, str], path: str, bodies: list[bytes], concurrency: int, rounds: int
) -> dict[str, dict[str, float]]:
    headers = {"X-Client-Id": "bench", "Content-Type": "application/json"}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            loaded = await closed_loop(url, path, bodies, headers, concurrency)
            one = await closed_loop(url, path, bodies[: len(bodies) // 2], headers, 1)
            runs[name].append(
                {
                    f"rps_{concurrency}_in_flight": loaded["rps"],
                    "loaded_p50_ms": loaded["p50_ms"],
                    "loaded_p99_ms": loaded["p99_ms"],
                    "p50_ms": one["p50_ms"],
                    "p99_ms": one["p99_ms"],
                }
            )
    return {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for name, rs in runs.items()
    }


def run(
    config: Path, requests: int = 1000, concurrency: int = 8, rounds: int = 3
) -> dict[str, Any]:
    if not mlserver_available():
        return {"skipped": f"MLServer is not installed ({MLSERVER}): run `bash .ci/install`"}
    x = digits_rows()
    bodies = [infer_body(x[i % len(x)]) for i in range(requests)]
    with ExitStack() as stack:
        urls: dict[str, str] = {}
        for name, sections in VARIANTS.items():
            settings = bench_settings(config, **sections)
            urls[name] = stack.enter_context(lab_gateway(settings))
        urls["mlserver"] = stack.enter_context(mlserver(settings))
        path = f"/v2/models/{settings.lab.seed_model}/infer"
        figures = asyncio.run(_rounds(urls, path, bodies, concurrency, rounds))
    rps = f"rps_{concurrency}_in_flight"
    baseline = figures["mlserver"]
    ratios = {
        f"ratio_{name}_vs_mlserver_rps": figures[name][rps] / baseline[rps] for name in VARIANTS
    }
    full = figures["gateway"]
    return {
        "requests": requests,
        "concurrency": concurrency,
        "rounds": rounds,
        **figures,
        **ratios,
        "ratio_gateway_vs_mlserver_p50": full["p50_ms"] / baseline["p50_ms"],
        "spans_and_samples_share_of_gateway_time": 1
        - full[rps] / figures["gateway_no_spans_samples"][rps],
        "squeeze_share_of_gateway_time": (
            full[rps] / figures["gateway_no_spans_samples"][rps]
            - full[rps] / figures["gateway_no_spans_samples_squeeze"][rps]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result = run(args.config, args.requests, args.concurrency, args.rounds)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
