"""Latency of one gateway infer round trip (all guards on) against onnxruntime on the same input
in the same process.

    python benchmarks/bench_gateway.py [--config configs/lab.toml] [--requests 2000]

Brings up (or reuses) Redis and MLflow of the given config with the project's launcher, starts
a gateway with the launcher on a free port and its own run dir (serving the seeded ``digits``
champion), then measures sequentially over one keep-alive connection:
  * gateway: POST /v2/models/digits/infer of one row (V2 JSON) over loopback: policy lookup,
             model, feature squeezing (detectors.squeezers), PRADA statistic, metrics, span,
             sampling;
  * model:   the served version's plain graph on the same row (the floor);
  * guarded: what the gateway does per request in process: its guarded graph (the model on
             the input and its squeezed copies, and the squeeze score, ``guard_graph``) and
             the extraction statistic;
  * the guards' cost is guarded - model (p50);
then requests per second with ``--concurrency`` requests in flight, against onnxruntime's one-row
calls per second on one thread. Prints p50/p99 of each and the ratios; ratios are what to
compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from bench_support import digits_rows, infer_body, own_gateway, percentiles_ms

from console.config import load_settings
from console.detectors.extraction import ExtractionMonitor
from console.lab.gateway.models import LoadedModel, make_session
from console.lab.seed import download_artifact


async def _concurrent_rps(
    url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int
) -> float:
    """Requests per second with ``concurrency`` requests in flight over keep-alive connections."""
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=10, limits=limits) as http:
        queue = list(range(len(bodies)))

        async def worker() -> None:
            while queue:
                i = queue.pop()
                response = await http.post(
                    "/v2/models/digits/infer", content=bodies[i], headers=headers
                )
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(bodies) / (time.perf_counter() - start)


def _timed(call: Any, n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - start)
    return out


def run(config: Path, requests: int = 2000, concurrency: int = 8) -> dict[str, Any]:
    x = digits_rows()
    bodies = [infer_body(x[i % len(x)]) for i in range(requests)]
    headers = {"X-Client-Id": "bench", "Content-Type": "application/json"}
    with own_gateway(config) as settings:
        with httpx.Client(base_url=settings.gateway.url, trust_env=False, timeout=10) as http:

            def infer(i: int) -> None:
                response = http.post("/v2/models/digits/infer", content=bodies[i], headers=headers)
                response.raise_for_status()

            _timed(infer, min(200, requests))  # warm up
            gateway = _timed(infer, requests)
            version = http.get("/v2/models/digits").json()["versions"][0]
        concurrent_rps = asyncio.run(
            _concurrent_rps(settings.gateway.url, bodies, headers, concurrency)
        )

    settings = load_settings(config)
    onnx = download_artifact(settings.mlflow.url, "digits", version)
    plain = LoadedModel("digits", version, "", datetime.now(UTC), make_session(onnx))
    guarded_model = LoadedModel(
        "digits",
        version,
        "",
        datetime.now(UTC),
        make_session(onnx, settings.detectors.squeezers),
        guarded=True,
    )
    rows = [x[i % len(x)][None, :] for i in range(requests)]
    model = _timed(lambda i: plain.run(rows[i]), requests)
    monitor = ExtractionMonitor()

    def guarded(i: int) -> None:
        guarded_model.run(rows[i])
        monitor.observe("bench", rows[i])

    g, m = percentiles_ms(gateway), percentiles_ms(model)
    d = percentiles_ms(_timed(guarded, requests))
    guards_p50 = d["p50_ms"] - m["p50_ms"]
    model_rps = requests / sum(model)
    return {
        "requests": requests,
        "gateway_round_trip": g,
        "onnxruntime_run": m,
        "guarded_in_process": d,
        "guards_cost_p50_ms": guards_p50,
        "ratio_gateway_vs_model_p50": g["p50_ms"] / m["p50_ms"],
        "ratio_gateway_vs_model_p99": g["p99_ms"] / m["p99_ms"],
        "throughput_rps_sequential": requests / sum(gateway),
        f"throughput_rps_{concurrency}_concurrent": concurrent_rps,
        "onnxruntime_rps_one_thread": model_rps,
        "ratio_gateway_rps_vs_model_rps": concurrent_rps / model_rps,
        "ratio_guards_vs_model_p50": guards_p50 / m["p50_ms"],
        "mean_ms": statistics.fmean(gateway) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    result = run(args.config, args.requests, args.concurrency)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
