"""Latency of one gateway infer round trip (all guards on) against onnxruntime on the same input
in the same process.

    python benchmarks/bench_gateway.py [--config .aml-test/config.toml] [--requests 2000]

Brings up (or reuses) Redis and MLflow of the given config with the project's launcher, starts
a gateway with the launcher on a free port and its own run dir (serving the seeded ``digits``
champion), then measures sequentially over one keep-alive connection:
  * gateway: POST /v2/models/digits/infer of one row (V2 JSON) over loopback: policy lookup,
             model, feature squeezing (3 squeezers), PRADA statistic, metrics, span, sampling;
  * model:   ``InferenceSession.run`` of the same row (the floor);
  * guards:  the detectors alone in process (squeezer batch + scores + extraction update).
Prints p50/p99 of each and the ratios; ratios are what to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from console.config import load_settings
from console.lab import services
from console.lab.gateway.detectors import ExtractionMonitor, FeatureSqueezer
from console.lab.gateway.models import make_session
from console.lab.seed import download_artifact


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def _timed(call: Any, n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - start)
    return out


def run(config: Path, requests: int = 2000) -> dict[str, Any]:
    base = load_settings(config)
    services.up(base, ["redis", "mlflow"])
    run_dir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    settings = base.model_copy(
        update={
            "run_dir": run_dir,
            "traces": base.traces.model_copy(update={"path": str(run_dir / "traces")}),
            "samples": base.samples.model_copy(update={"path": str(run_dir / "samples")}),
            "gateway": base.gateway.model_copy(
                update={"url": f"http://127.0.0.1:{_free_port()}", "models": ["digits"]}
            ),
        }
    )
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float32)
    services.up(settings, ["gateway"], seed=False)
    try:
        with httpx.Client(base_url=settings.gateway.url, trust_env=False, timeout=10) as http:
            bodies = [
                json.dumps(
                    {
                        "inputs": [
                            {
                                "name": "input",
                                "shape": [1, 64],
                                "datatype": "FP32",
                                "data": x[i % len(x)].tolist(),
                            }
                        ]
                    }
                ).encode()
                for i in range(requests)
            ]
            headers = {"X-Client-Id": "bench", "Content-Type": "application/json"}

            def infer(i: int) -> None:
                response = http.post("/v2/models/digits/infer", content=bodies[i], headers=headers)
                response.raise_for_status()

            _timed(infer, min(200, requests))  # warm up
            gateway = _timed(infer, requests)
            version = http.get("/v2/models/digits").json()["versions"][0]
    finally:
        services.down(settings, ["gateway"])

    session = make_session(download_artifact(base.mlflow.url, "digits", version))
    rows = [x[i % len(x)][None, :] for i in range(requests)]
    model = _timed(lambda i: session.run(["label", "probabilities"], {"input": rows[i]}), requests)
    squeezer, monitor = FeatureSqueezer(), ExtractionMonitor()

    def guards(i: int) -> None:
        batch = squeezer.batch(rows[i])
        probabilities = session.run(["probabilities"], {"input": batch})[0]
        squeezer.scores(probabilities, 1)
        monitor.observe("bench", rows[i])

    guard = _timed(guards, requests)
    g, m, d = _percentiles(gateway), _percentiles(model), _percentiles(guard)
    return {
        "requests": requests,
        "gateway_round_trip": g,
        "onnxruntime_run": m,
        "guards_in_process": d,
        "ratio_gateway_vs_model_p50": g["p50_ms"] / m["p50_ms"],
        "ratio_gateway_vs_model_p99": g["p99_ms"] / m["p99_ms"],
        "throughput_rps_sequential": requests / sum(gateway),
        "mean_ms": statistics.fmean(gateway) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path(".aml-test/config.toml"))
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    sys.stdout.write(json.dumps(run(args.config, args.requests), indent=2) + "\n")


if __name__ == "__main__":
    main()
