"""Enforcement lag: from a block written to the policy store to the client's first 403.

    python benchmarks/bench_enforcement.py [--config configs/lab.toml] [--trials 100]

Starts a gateway of its own (``bench_support.own_gateway``) against the config's Redis and
MLflow. Each trial uses a new client id: one answered request (the gateway has cached its
policy), then ``PolicyStore.block`` (what the block-client action calls: SET + PUBLISH), then
requests as fast as one connection allows until one is answered 403. The lag is the time from
just before the write to that answer; the baseline, measured in the same run, is one answered
request's round trip, so the ratio says how many round trips a block takes to apply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from bench_support import digits_rows, infer_body, own_gateway

from console.adapters.policy import PolicyStore
from console.config import Settings


async def _trials(settings: Settings, trials: int) -> dict[str, Any]:
    import redis.asyncio as aioredis

    body = infer_body(digits_rows()[0])
    path = f"/v2/models/{settings.models.served[0]}/infer"
    client = aioredis.Redis.from_url(settings.redis.url)
    store = PolicyStore(client, settings.redis.key_prefix)
    lags, round_trips, answered_after = [], [], []
    async with httpx.AsyncClient(base_url=settings.gateway.url, trust_env=False) as http:
        for i in range(trials):
            who = f"lag-{secrets.token_hex(4)}-{i}"
            headers = {"X-Client-Id": who, "Content-Type": "application/json"}
            start = time.perf_counter()
            first = await http.post(path, content=body, headers=headers)
            round_trips.append(time.perf_counter() - start)
            first.raise_for_status()
            written = time.perf_counter()
            await store.block(who, timedelta(minutes=5), "benchmark", "bench", f"bench-{i}")
            served = 0
            while True:
                response = await http.post(path, content=body, headers=headers)
                if response.status_code == 403:
                    lags.append(time.perf_counter() - written)
                    break
                response.raise_for_status()
                served += 1
            answered_after.append(served)
    await client.aclose()
    lag_ms, rtt_ms = np.array(lags) * 1e3, np.array(round_trips) * 1e3
    return {
        "trials": trials,
        "lag_p50_ms": float(np.percentile(lag_ms, 50)),
        "lag_p99_ms": float(np.percentile(lag_ms, 99)),
        "lag_max_ms": float(lag_ms.max()),
        "round_trip_p50_ms": float(np.percentile(rtt_ms, 50)),
        "ratio_lag_vs_round_trip_p50": float(np.percentile(lag_ms, 50) / np.percentile(rtt_ms, 50)),
        "requests_answered_after_the_write_max": int(max(answered_after)),
        "trials_with_an_answer_after_the_write": int(sum(1 for n in answered_after if n)),
    }


def run(config: Path, trials: int = 100) -> dict[str, Any]:
    with own_gateway(config) as settings:
        return asyncio.run(_trials(settings, trials))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    sys.stdout.write(json.dumps(run(args.config, args.trials), indent=2) + "\n")


if __name__ == "__main__":
    main()
