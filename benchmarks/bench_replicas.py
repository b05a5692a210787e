"""Mitigations across gateway replicas: block -> first 403 through NGINX with ``lab up
--replicas 3``, and budget accuracy (answered per window / qpm) with 1 and with 3 replicas.

    python benchmarks/bench_replicas.py [--config configs/lab.toml] [--trials 20]
        [--windows 3] [--qpm 20] [--per-window 60] [--poll-ms 5]

Runs on its own: the budget stage lasts ``--windows`` one-minute windows after the next window
starts (about 4 minutes with the defaults). On the Redis and MLflow of the config (started if
they are not) it brings up two gateway tiers with the project's launcher, each with a run dir,
key prefix and free ports of its own: the single lab gateway (``lab up -s gateway``) and three
replicas behind NGINX asking the policy endpoint (``lab up -s gateway --replicas 3``).

  * Block lag, per tier, ``--trials`` times with a new client id each: one answered request
    (every cache has the client), then ``PolicyStore.block`` (what block-client writes: SET +
    PUBLISH), then a request every ``--poll-ms`` until one is answered 403. The lag is from
    just before the write to that answer; the single gateway's lag, measured in the same run,
    is the baseline of the ratio, and one answered request's round trip the other.
  * Budget accuracy, both tiers at once: one client with ``--qpm`` (``PolicyStore.set_budget``),
    ``--per-window`` requests spread evenly over each window, aligned to the fixed one-minute
    windows the budgets count in. Answered (200) per window / qpm; the target is 1.0, over 1
    means the replicas together let more through than the budget, under 1 that they refused
    more than it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis.asyncio as aioredis
from bench_stack import bench_settings, lab_gateway
from bench_support import digits_rows, infer_body

from console.adapters.budget_windows import WINDOW_S, window_of
from console.adapters.policy import PolicyStore
from console.config import Settings

TIERS = {"single_gateway": None, "replicas_3": 3}
START_MARGIN_S = 2.0
"""A budget is set at least this long before its first window: every cache has it by then."""


def _path(settings: Settings) -> str:
    return f"/v2/models/{settings.models.served[0]}/infer"


def _headers(client: str) -> dict[str, str]:
    return {"X-Client-Id": client, "Content-Type": "application/json"}


async def _block_lag(settings: Settings, url: str, trials: int, poll_s: float) -> dict[str, Any]:
    body = infer_body(digits_rows()[0])
    redis = aioredis.Redis.from_url(settings.redis.url)
    store = PolicyStore(redis, settings.redis.key_prefix)
    lags, round_trips, answered_after = [], [], []
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=10) as http:
        for i in range(trials):
            who = f"lag-{secrets.token_hex(4)}-{i}"
            start = time.perf_counter()
            first = await http.post(_path(settings), content=body, headers=_headers(who))
            round_trips.append(time.perf_counter() - start)
            first.raise_for_status()
            written = time.perf_counter()
            await store.block(who, timedelta(minutes=5), "benchmark", "bench", f"bench-{i}")
            served = 0
            while True:
                answer = await http.post(_path(settings), content=body, headers=_headers(who))
                if answer.status_code == 403:
                    lags.append(time.perf_counter() - written)
                    break
                answer.raise_for_status()
                served += 1
                await asyncio.sleep(poll_s)
            answered_after.append(served)
    await redis.aclose()
    lag_ms, rtt_ms = np.array(lags) * 1e3, np.array(round_trips) * 1e3
    return {
        "lag_p50_ms": float(np.percentile(lag_ms, 50)),
        "lag_p99_ms": float(np.percentile(lag_ms, 99)),
        "lag_max_ms": float(lag_ms.max()),
        "round_trip_p50_ms": float(np.percentile(rtt_ms, 50)),
        "ratio_lag_vs_round_trip_p50": float(np.percentile(lag_ms, 50) / np.percentile(rtt_ms, 50)),
        "requests_answered_after_the_write_max": int(max(answered_after)),
    }


async def _budget_accuracy(
    settings: Settings, url: str, qpm: int, windows: int, per_window: int, first_window: int
) -> dict[str, Any]:
    body = infer_body(digits_rows()[1])
    client = f"budget-{secrets.token_hex(4)}"
    redis = aioredis.Redis.from_url(settings.redis.url)
    await PolicyStore(redis, settings.redis.key_prefix).set_budget(client, qpm, "bench", "bench-b")
    await redis.aclose()
    answered = [0] * windows
    other: dict[str, int] = {}
    slot = WINDOW_S / per_window
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=10) as http:
        for w in range(windows):
            for k in range(per_window):
                await asyncio.sleep(
                    max(0.0, first_window + w * WINDOW_S + (k + 0.5) * slot - time.time())
                )
                answer = await http.post(_path(settings), content=body, headers=_headers(client))
                if answer.status_code == 200:
                    answered[w] += 1
                elif answer.status_code != 429:
                    other[str(answer.status_code)] = other.get(str(answer.status_code), 0) + 1
    ratios = [n / qpm for n in answered]
    return {
        "answered_per_window": answered,
        "ratio_answered_vs_qpm_per_window": ratios,
        "ratio_answered_vs_qpm_mean": float(np.mean(ratios)),
        "other_statuses": other,
    }


async def _budgets(
    tiers: dict[str, tuple[Settings, str]], qpm: int, windows: int, per_window: int
) -> dict[str, Any]:
    first = window_of(time.time() + START_MARGIN_S) + WINDOW_S
    runs = [
        _budget_accuracy(settings, url, qpm, windows, per_window, first)
        for settings, url in tiers.values()
    ]
    return dict(zip(tiers, await asyncio.gather(*runs), strict=True))


def run(
    config: Path,
    trials: int = 20,
    windows: int = 3,
    qpm: int = 20,
    per_window: int = 60,
    poll_ms: float = 5.0,
) -> dict[str, Any]:
    with ExitStack() as stack:
        tiers: dict[str, tuple[Settings, str]] = {}
        for name, replicas in TIERS.items():
            settings = bench_settings(config)
            tiers[name] = settings, stack.enter_context(lab_gateway(settings, replicas))
        lag = {
            name: asyncio.run(_block_lag(settings, url, trials, poll_ms / 1e3))
            for name, (settings, url) in tiers.items()
        }
        budgets = asyncio.run(_budgets(tiers, qpm, windows, per_window))
    single, replicated = lag["single_gateway"], lag["replicas_3"]
    return {
        "trials": trials,
        "poll_ms": poll_ms,
        "block_lag": lag,
        "ratio_block_lag_replicas_vs_single_p50": replicated["lag_p50_ms"] / single["lag_p50_ms"],
        "ratio_block_lag_replicas_vs_single_p99": replicated["lag_p99_ms"] / single["lag_p99_ms"],
        "qpm": qpm,
        "requests_per_window": per_window,
        "budget_accuracy": budgets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--qpm", type=int, default=20)
    parser.add_argument("--per-window", type=int, default=60)
    parser.add_argument("--poll-ms", type=float, default=5.0)
    args = parser.parse_args()
    result = run(args.config, args.trials, args.windows, args.qpm, args.per_window, args.poll_ms)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
