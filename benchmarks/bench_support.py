"""Shared by the gateway benchmarks: a gateway of its own (free port, temporary run dir and
Redis key prefix) against the Redis and MLflow of a config, started with the project's launcher,
and one V2 request body per digit."""

from __future__ import annotations

import json
import secrets
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from console.config import Settings, load_settings
from console.lab import services


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


@contextmanager
def own_gateway(config: Path, **gateway: object) -> Iterator[Settings]:
    """Settings of a gateway started for the benchmark (stopped on exit) serving ``digits``."""
    base = load_settings(config)
    services.up(base, ["redis", "mlflow"])
    run_dir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    settings = base.model_copy(
        update={
            "run_dir": run_dir,
            "redis": base.redis.model_copy(update={"key_prefix": f"bench{secrets.token_hex(4)}"}),
            "traces": base.traces.model_copy(update={"path": str(run_dir / "traces")}),
            "samples": base.samples.model_copy(update={"path": str(run_dir / "samples")}),
            "models": base.models.model_copy(update={"served": [base.lab.seed_model]}),
            "gateway": base.gateway.model_copy(
                update={"url": f"http://127.0.0.1:{free_port()}", **gateway}
            ),
        }
    )
    services.up(settings, ["gateway"], seed=False)
    try:
        yield settings
    finally:
        services.down(settings, ["gateway"])


def digits_rows() -> np.ndarray:
    from sklearn.datasets import load_digits

    return np.asarray(load_digits().data, dtype=np.float32)


def infer_body(row: np.ndarray) -> bytes:
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row.tolist()}
    return json.dumps({"inputs": [tensor]}).encode()
