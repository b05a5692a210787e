"""Shared by the NGINX, policy-endpoint and MLServer benchmarks: settings of a lab of the
benchmark's own (temporary run dir, Redis key prefix, free ports) on the Redis and MLflow of a
config, the lab gateway or ``lab up --replicas N`` on them, the policy endpoint (``aml-console
policy serve``), NGINX rendered from the shipped snippet with or without ``auth_request``, MLServer
serving the seeded digits champion (``.aml-venvs/mlserver``), and a closed-loop load generator."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from bench_support import free_port

from console.config import Settings, load_settings
from console.lab import nginx, services
from console.lab.seed import describe_model, download_artifact
from console.private_files import write_private

REPO = Path(__file__).resolve().parents[1]
MLSERVER = REPO / ".aml-venvs" / "mlserver" / "bin" / "mlserver"
MLSERVER_RUNTIME = REPO / "tests" / "replay" / "mlserver_runtime"
START_S = 90.0


def bench_settings(config: Path, **sections: dict[str, Any]) -> Settings:
    """The config's settings with a run dir, key prefix, gateway and policy ports of their own
    (its Redis and MLflow started and the seed model registered if they are not); ``sections``
    update fields of settings sections, e.g. ``gateway={"sample_fraction": 0}``."""
    base = load_settings(config)
    services.up(base, ["redis", "mlflow"])
    run_dir = Path(tempfile.mkdtemp(prefix="bench-lab-"))
    fields: dict[str, dict[str, Any]] = {
        "redis": {"key_prefix": f"bench{secrets.token_hex(4)}"},
        "traces": {"path": str(run_dir / "traces")},
        "samples": {"path": str(run_dir / "samples")},
        "models": {"served": [base.lab.seed_model]},
        "gateway": {"url": f"http://127.0.0.1:{free_port()}"},
        "lab": {"policy_port": free_port()},
    }
    for name, values in sections.items():
        fields[name] = {**fields.get(name, {}), **values}
    update: dict[str, Any] = {"run_dir": run_dir}
    for name, values in fields.items():
        update[name] = getattr(base, name).model_copy(update=values)
    return base.model_copy(update=update)


@contextmanager
def lab_gateway(settings: Settings, replicas: int | None = None) -> Iterator[str]:
    """The gateway of ``settings`` (``lab up -s gateway [--replicas N]``), its URL; stopped and
    its replica state removed on exit."""
    services.up(settings, ["gateway"], seed=False, replicas=replicas)
    try:
        yield settings.gateway.url
    finally:
        services.down(settings, ["gateway"])


def _wait(proc: subprocess.Popen[bytes], url: str, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_S
    with httpx.Client(trust_env=False, timeout=2) as http:
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-600:]
                raise RuntimeError(f"{what} did not come up ({proc.returncode}): {tail}")
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)


@contextmanager
def _process(argv: list[str], env: dict[str, str], ready_url: str, what: str) -> Iterator[None]:
    log = Path(tempfile.mkdtemp(prefix="bench-proc-")) / "out.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=log.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(proc, ready_url, log, what)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@contextmanager
def policy_endpoint(config: Path, settings: Settings) -> Iterator[str]:
    """``aml-console --config <config> policy serve`` on a free port, on ``settings``' Redis key
    prefix and run dir; its base URL."""
    url = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "CONSOLE_REDIS__KEY_PREFIX": settings.redis.key_prefix,
        "CONSOLE_RUN_DIR": str(settings.run_dir),
    }
    argv = [sys.executable, "-m", "console", "--config", str(config.resolve())]
    argv += ["policy", "serve", "--listen", url.removeprefix("http://")]
    with _process(argv, env, f"{url}/healthz", "policy serve"):
        yield url


def mlserver_available() -> bool:
    return os.access(MLSERVER, os.X_OK)


@contextmanager
def mlserver(settings: Settings) -> Iterator[str]:
    """MLServer (its own virtualenv) serving the seed model's champion ONNX artifact as
    ``/v2/models/<seed model>`` through tests/replay/mlserver_runtime (onnxruntime, one thread),
    no parallel workers (inference in its event loop, as the lab gateway's); its URL."""
    name = settings.lab.seed_model
    model = describe_model(settings.mlflow.url, name)
    if model is None:
        raise RuntimeError(f"{name!r} is not registered in {settings.mlflow.url}")
    root = Path(tempfile.mkdtemp(prefix="bench-mlserver-"))
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    config = {"host": "127.0.0.1", "parallel_workers": 0, "load_models_at_startup": True}
    config.update({f"{kind}_port": port for kind, port in ports.items()})
    (root / "settings.json").write_text(json.dumps(config))
    folder = root / name
    folder.mkdir()
    (folder / "model.onnx").write_bytes(
        download_artifact(settings.mlflow.url, name, model.champion)
    )
    parameters = {"version": model.champion, "uri": str(folder / "model.onnx")}
    model_settings = {
        "name": name,
        "implementation": "onnx_contract.OnnxContract",
        "parameters": parameters,
    }
    (folder / "model-settings.json").write_text(json.dumps(model_settings))
    drop = ("PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER_") and k not in drop}
    env["PYTHONPATH"] = str(MLSERVER_RUNTIME)
    url = f"http://127.0.0.1:{ports['http']}"
    with _process([str(MLSERVER), "start", str(root)], env, f"{url}/v2/models/{name}/ready", name):
        yield url


@contextmanager
def nginx_in_front(upstream: str, policy_url: str, *, auth_request: bool = True) -> Iterator[str]:
    """NGINX on a free port running the shipped snippet before ``upstream`` (a URL); without
    ``auth_request`` the same config less its ``auth_request`` line (the proxying alone)."""
    port = free_port()
    prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    upstreams = [upstream.removeprefix("http://")]
    layout = nginx.write_nginx_conf(prefix / "nginx", port, upstreams, policy_url)
    if not auth_request:
        lines = layout.conf.read_text().splitlines()
        kept = [ln for ln in lines if ln.strip() != "auth_request /_aml_policy;"]
        assert len(kept) == len(lines) - 1, "the snippet's auth_request line was not found"
        write_private(layout.conf, "\n".join(kept) + "\n")
    running = nginx.start_nginx(layout, port)
    try:
        yield running.url
    finally:
        nginx.stop_nginx(running)


def stats_ms(latencies: list[float]) -> dict[str, float]:
    ms = np.array(latencies) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


async def closed_loop(
    url: str,
    path: str,
    bodies: list[bytes] | int,
    headers: dict[str, str],
    concurrency: int,
) -> dict[str, float]:
    """``concurrency`` requests in flight (each worker sends its next one when the last is
    answered) over keep-alive connections: a POST of each body, or ``bodies`` GETs. Requests
    per second, and the p50/p99 of each request's latency under that load."""
    count = bodies if isinstance(bodies, int) else len(bodies)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30, limits=limits) as http:
        pending = list(range(count))

        async def worker() -> None:
            while pending:
                i = pending.pop()
                start = time.perf_counter()
                if isinstance(bodies, int):
                    response = await http.get(path, headers=headers)
                else:
                    response = await http.post(path, content=bodies[i], headers=headers)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()

        for _ in range(3):  # warm up: every connection opened, caches filled
            if isinstance(bodies, int):
                await asyncio.gather(*(http.get(path, headers=headers) for _ in range(concurrency)))
            else:
                warm = [http.post(path, content=b, headers=headers) for b in bodies[:concurrency]]
                await asyncio.gather(*warm)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"rps": count / elapsed, **stats_ms(latencies)}
