"""The policy endpoint's cost: V2 infer requests through NGINX with ``auth_request`` to
``aml-console policy serve`` against the same NGINX proxying without it, and the endpoint alone.

    python benchmarks/bench_policy_endpoint.py [--config configs/lab.toml] [--requests 1000]
        [--concurrency 8] [--rounds 3]

On the Redis and MLflow of the config (started if they are not), under a key prefix and run dir
of its own, it starts the policy endpoint (the CLI, a subprocess), an upstream and two NGINX
processes rendered from the shipped snippet (docs/gateways/nginx.conf): one as shipped, one
without its ``auth_request`` line (everything else identical). The upstream is MLServer serving
the seeded digits champion if its virtualenv exists (``.aml-venvs/mlserver``, made by
``.ci/install``), else the lab gateway. Measured, in alternating rounds (the median of each):
  * through NGINX, with and without auth_request: p50/p99 of one request in flight, requests/s
    and p50/p99 with ``--concurrency`` in flight (httpx.AsyncClient, keep-alive);
    ratio with/without (the baseline is the proxying alone, same NGINX, same upstream);
  * the endpoint alone: GET /v1/decision, one in flight and ``--concurrency`` in flight, for a
    client without a budget (a cache lookup) and one with a budget it never reaches (every
    admitted request is one Redis pipeline, INCR + EXPIRE); the baseline of that extra cost is
    the same pipeline sent from this process (redis-py, one connection).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from bench_stack import (
    bench_settings,
    closed_loop,
    lab_gateway,
    mlserver,
    mlserver_available,
    nginx_in_front,
    policy_endpoint,
    stats_ms,
)
from bench_support import digits_rows, infer_body

from console.adapters.policy import PolicyStore
from console.config import Settings

FREE, BUDGETED = "bench-free", "bench-budgeted"
NEVER_REACHED_QPM = 1_000_000_000


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


async def _through_nginx(
    urls: dict[str, str], path: str, bodies: list[bytes], concurrency: int, rounds: int
) -> dict[str, dict[str, float]]:
    headers = {"X-Client-Id": FREE, "Content-Type": "application/json"}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            one = await closed_loop(url, path, bodies, headers, 1)
            loaded = await closed_loop(url, path, bodies, headers, concurrency)
            runs[name].append(
                {
                    "p50_ms": one["p50_ms"],
                    "p99_ms": one["p99_ms"],
                    "rps": loaded["rps"],
                    "loaded_p50_ms": loaded["p50_ms"],
                    "loaded_p99_ms": loaded["p99_ms"],
                }
            )
    return {name: _median(r) for name, r in runs.items()}


async def _endpoint_alone(
    settings: Settings, url: str, requests: int, concurrency: int, rounds: int
) -> dict[str, Any]:
    redis = aioredis.Redis.from_url(settings.redis.url)
    prefix = settings.redis.key_prefix
    await PolicyStore(redis, prefix).set_budget(BUDGETED, NEVER_REACHED_QPM, "bench", "bench-1")
    runs: dict[str, list[dict[str, float]]] = {FREE: [], BUDGETED: []}
    for _ in range(rounds):
        for client in runs:
            headers = {"X-Client-Id": client}
            one = await closed_loop(url, "/v1/decision", requests, headers, 1)
            loaded = await closed_loop(url, "/v1/decision", requests, headers, concurrency)
            runs[client].append(
                {
                    "p50_ms": one["p50_ms"],
                    "p99_ms": one["p99_ms"],
                    "rps_1_in_flight": one["rps"],
                    f"rps_{concurrency}_in_flight": loaded["rps"],
                }
            )
    pipeline_s = []
    key = f"{prefix}:bench-pipeline"
    for _ in range(requests):
        start = time.perf_counter()
        async with redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            await pipe.execute()
        pipeline_s.append(time.perf_counter() - start)
    await redis.aclose()
    free, budgeted = _median(runs[FREE]), _median(runs[BUDGETED])
    pipeline = stats_ms(pipeline_s)
    extra = budgeted["p50_ms"] - free["p50_ms"]
    return {
        "unbudgeted": free,
        "budgeted": budgeted,
        "redis_incr_expire_pipeline": pipeline,
        "budget_cost_p50_ms": extra,
        "ratio_budget_cost_vs_redis_pipeline_p50": extra / pipeline["p50_ms"],
        "ratio_budgeted_vs_unbudgeted_p50": budgeted["p50_ms"] / free["p50_ms"],
    }


def run(
    config: Path, requests: int = 1000, concurrency: int = 8, rounds: int = 3
) -> dict[str, Any]:
    settings = bench_settings(config)
    name = settings.lab.seed_model
    x = digits_rows()
    bodies = [infer_body(x[i % len(x)]) for i in range(requests)]
    use_mlserver = mlserver_available()
    with policy_endpoint(config, settings) as policy_url:
        upstream: AbstractContextManager[str] = (
            mlserver(settings) if use_mlserver else lab_gateway(settings)
        )
        with (
            upstream as upstream_url,
            nginx_in_front(upstream_url, policy_url) as guarded_url,
            nginx_in_front(upstream_url, policy_url, auth_request=False) as plain_url,
        ):
            urls = {"with_auth_request": guarded_url, "without_auth_request": plain_url}
            path = f"/v2/models/{name}/infer"
            nginx = asyncio.run(_through_nginx(urls, path, bodies, concurrency, rounds))
        alone = asyncio.run(_endpoint_alone(settings, policy_url, requests, concurrency, rounds))
    guarded, plain = nginx["with_auth_request"], nginx["without_auth_request"]
    return {
        "upstream": "mlserver" if use_mlserver else "lab gateway",
        "requests": requests,
        "concurrency": concurrency,
        "rounds": rounds,
        "nginx": nginx,
        "ratio_auth_request_vs_plain_p50": guarded["p50_ms"] / plain["p50_ms"],
        "ratio_auth_request_vs_plain_p99": guarded["p99_ms"] / plain["p99_ms"],
        "ratio_auth_request_vs_plain_rps": guarded["rps"] / plain["rps"],
        "auth_request_cost_p50_ms": guarded["p50_ms"] - plain["p50_ms"],
        "endpoint_alone": alone,
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
