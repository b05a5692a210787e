"""Detection behind throwaway client ids: the same extraction attack on the running lab, first
alone (the baseline), then right after N made-up ids each sent one request (the Sybil attack
that used to hold every client-label slot and hide the attacker in ``client="other"``).

    python benchmarks/bench_sybil.py [--config configs/lab.toml] [--ids 200,2000]
                                     [--id-rate 10] [--rate 30]

Brings up (or reuses) the config's lab. For the baseline and each N: a new attacker id; seconds
from its first answered query to its AMLExtractionSuspected in Alertmanager, and the queries
answered by then; whether it held a label of its own when it paged; then it is blocked, so it
gives up, and unblocked. Ratios are against the baseline of the same run; the absolute times
depend on the machine. The throwaway ids are sent at ``--id-rate`` per second (the review's
10/s), so 2,000 of them take minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from bench_detection import LAB, _alert_active, _answered, alert_floor_s

from console.adapters.policy import PolicyStore
from console.config import Settings, load_settings
from console.lab import services
from console.lab.attacks.extraction import run_extraction

PAYLOAD = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}


async def _throwaway_ids(settings: Settings, count: int, per_s: float, prefix: str) -> None:
    model = settings.models.served[0]
    async with httpx.AsyncClient(base_url=settings.gateway.url, timeout=10, trust_env=False) as c:
        for i in range(count):
            await c.post(
                f"/v2/models/{model}/infer", json=PAYLOAD, headers={"X-Client-Id": f"{prefix}-{i}"}
            )
            await asyncio.sleep(1 / per_s)


def _labelled(gateway: str, client: str) -> bool:
    text = httpx.get(f"{gateway}/metrics", timeout=5, trust_env=False).text
    return any(
        line.startswith("aml_requests_total") and f'client="{client}"' in line
        for line in text.splitlines()
    )


async def _trial(settings: Settings, store: PolicyStore, client: str, rate: float) -> Any:
    from datetime import timedelta

    gateway, alertmanager = settings.gateway.url, settings.alertmanager.url
    attack = asyncio.create_task(
        run_extraction(
            settings, client, rate=rate, budget=20_000, duration=300.0, seed=11, give_up_after=10
        )
    )
    started = time.monotonic()
    while not await asyncio.to_thread(_alert_active, alertmanager, client):
        if attack.done():
            attack.result()
            raise SystemExit(f"{client}: the attack ended before its alert")
        if time.monotonic() - started > 240:
            attack.cancel()
            return {"client": client, "time_to_detect_s": None, "detected": False}
        await asyncio.sleep(0.25)
    detected_s = time.monotonic() - started
    answered = await asyncio.to_thread(_answered, gateway, client)
    labelled = await asyncio.to_thread(_labelled, gateway, client)
    await store.block(client, timedelta(minutes=10), "benchmark", "bench", f"bench-{client}")
    await attack
    await store.unblock(client)
    return {
        "client": client,
        "detected": True,
        "time_to_detect_s": round(detected_s, 2),
        "queries_answered_before_alert": answered,
        "had_a_label_of_its_own": labelled,
    }


async def _run(settings: Settings, ids: list[int], id_rate: float, rate: float) -> Any:
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(settings.redis.url)
    store = PolicyStore(redis, settings.redis.key_prefix)
    stamp = time.strftime("%H%M%S")
    results: dict[str, Any] = {}
    try:
        results["baseline"] = await _trial(settings, store, f"bench-sybil-{stamp}-0", rate)
        for n in ids:
            started = time.monotonic()
            await _throwaway_ids(settings, n, id_rate, f"sybil-{stamp}-{n}")
            trial = await _trial(settings, store, f"bench-sybil-{stamp}-{n}", rate)
            trial["throwaway_ids"] = n
            trial["seconds_sending_ids"] = round(time.monotonic() - started, 1)
            results[f"behind_{n}_ids"] = trial
    finally:
        await redis.aclose()
    return results


def run(config: Path, ids: list[int], id_rate: float, rate: float) -> dict[str, Any]:
    settings = load_settings(config)
    services.up(settings, LAB)
    results = asyncio.run(_run(settings, ids, id_rate, rate))
    base = results["baseline"]["time_to_detect_s"]
    for key, trial in results.items():
        if key != "baseline" and trial["time_to_detect_s"] is not None and base:
            trial["ratio_time_to_detect_vs_baseline"] = round(trial["time_to_detect_s"] / base, 2)
    results["alert_floor_s"] = alert_floor_s()
    results["client_label_slots"] = settings.gateway.client_labels
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--ids", default="200,2000")
    parser.add_argument("--id-rate", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0)
    args = parser.parse_args()
    ids = [int(n) for n in args.ids.split(",") if n]
    sys.stdout.write(json.dumps(run(args.config, ids, args.id_rate, args.rate), indent=2) + "\n")


if __name__ == "__main__":
    main()
