"""Detection on the running lab: false alerts under benign traffic, then how many queries an
extraction attacker gets answered before its alert reaches Alertmanager.

    python benchmarks/bench_detection.py [--config configs/lab.toml] [--benign-minutes 10]
                                         [--trials 3] [--rate 30]

Brings up (or reuses) the config's lab: Redis, MLflow, Alertmanager, Prometheus, the gateway
and its benign traffic. Then:
  * benign: waits ``--benign-minutes`` with only the benign clients, and counts the alert
    series that fired in that window (Prometheus' ``ALERTS``): each one is a false positive;
  * attack: ``--trials`` extraction attacks (new client id each, ``--rate`` queries per second).
    For each: seconds from the attacker's first answered query to its AMLExtractionSuspected in
    Alertmanager, and the queries the gateway had answered it by then; then it is blocked
    (policy store) so it gives up, and unblocked.
The baseline is the alert's floor, from the same config: scrape interval + rule evaluation
interval + the alert's ``for:``; the ratio time-to-detect / floor is what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from console.adapters.policy import PolicyStore
from console.config import Settings, load_settings
from console.lab import scrape, services
from console.lab.attacks.extraction import run_extraction

ALERT = "AMLExtractionSuspected"
RULES = Path(__file__).resolve().parents[1] / "configs" / "prometheus"
LAB = ["redis", "mlflow", "alertmanager", "prometheus", "gateway", "traffic"]


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smh])", duration))


def alert_floor_s() -> float:
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == ALERT:
                    return (
                        _seconds(scrape.SCRAPE_INTERVAL)
                        + _seconds(scrape.EVALUATION_INTERVAL)
                        + _seconds(rule.get("for", "0s"))
                    )
    raise SystemExit(f"no alert {ALERT} in {RULES}")


def _fired_series(prometheus: str, start: float, end: float) -> list[dict[str, str]]:
    response = httpx.get(
        f"{prometheus}/api/v1/query_range",
        params={"query": 'ALERTS{alertstate="firing"}', "start": start, "end": end, "step": 5},
        timeout=10,
        trust_env=False,
    )
    response.raise_for_status()
    return [r["metric"] for r in response.json()["data"]["result"]]


def _answered(gateway: str, client: str) -> int:
    text = httpx.get(f"{gateway}/metrics", timeout=5, trust_env=False).text
    pattern = re.compile(rf'^aml_requests_total{{.*client="{re.escape(client)}".*outcome="ok"')
    return int(sum(float(line.split()[-1]) for line in text.splitlines() if pattern.match(line)))


def _alert_active(alertmanager: str, client: str) -> bool:
    response = httpx.get(
        f"{alertmanager}/api/v2/alerts",
        params={"filter": f'alertname="{ALERT}"', "active": "true"},
        timeout=5,
        trust_env=False,
    )
    response.raise_for_status()
    return any(a["labels"].get("client") == client for a in response.json())


async def _trial(
    settings: Settings, store: PolicyStore, client: str, rate: float
) -> dict[str, Any]:
    gateway, alertmanager = settings.gateway.url, settings.alertmanager.url
    attack = asyncio.create_task(
        run_extraction(
            settings, client, rate=rate, budget=20_000, duration=300.0, seed=11, give_up_after=10
        )
    )
    while await asyncio.to_thread(_answered, gateway, client) == 0:
        if attack.done():
            attack.result()  # raises what stopped it
            raise SystemExit(f"{client}: the attack ended before any answer")
        await asyncio.sleep(0.1)
    first = time.monotonic()
    while not await asyncio.to_thread(_alert_active, alertmanager, client):
        if attack.done():
            raise SystemExit(f"{client}: the attack ended before its alert")
        await asyncio.sleep(0.25)
    detected_s = time.monotonic() - first
    answered = await asyncio.to_thread(_answered, gateway, client)
    await store.block(client, timedelta(minutes=10), "benchmark", "bench", f"bench-{client}")
    report = await attack
    await store.unblock(client)
    return {
        "client": client,
        "time_to_detect_s": round(detected_s, 2),
        "queries_answered_before_alert": answered,
        "queries_answered_in_all": report.queries_answered,
        "surrogate_agreement": report.surrogate_agreement,
    }


async def _attacks(settings: Settings, trials: int, rate: float) -> list[dict[str, Any]]:
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(settings.redis.url)
    store = PolicyStore(redis, settings.redis.key_prefix)
    stamp = time.strftime("%H%M%S")
    try:
        return [
            await _trial(settings, store, f"bench-mallory-{stamp}-{i}", rate) for i in range(trials)
        ]
    finally:
        await redis.aclose()


def run(config: Path, benign_minutes: float, trials: int, rate: float) -> dict[str, Any]:
    settings = load_settings(config)
    services.up(settings, LAB)
    start = time.time()
    time.sleep(benign_minutes * 60)
    end = time.time()
    fired = _fired_series(settings.prometheus.url, start, end)
    attacks = asyncio.run(_attacks(settings, trials, rate))
    floor = alert_floor_s()
    detect = [a["time_to_detect_s"] for a in attacks]
    return {
        "benign_minutes": benign_minutes,
        "benign_clients": settings.traffic.clients,
        "false_positives": len(fired),
        "false_positive_series": fired,
        "attack_rate_qps": rate,
        "attacks": attacks,
        "alert_floor_s": floor,
        "ratio_time_to_detect_vs_floor_max": max(detect) / floor,
        "ratio_time_to_detect_vs_floor_min": min(detect) / floor,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--benign-minutes", type=float, default=10.0)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--rate", type=float, default=30.0)
    args = parser.parse_args()
    result = run(args.config, args.benign_minutes, args.trials, args.rate)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
