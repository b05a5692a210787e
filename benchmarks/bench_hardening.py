"""Extraction under output hardening: surrogate agreement at equal queries, against a client
whose answers are full and one hardened to label-only, in the same run.

    python benchmarks/bench_hardening.py [--config configs/lab.toml] [--queries 500]
                                         [--rate 100] [--seed 5]

Brings up (or reuses) the config's Redis, MLflow and gateway. Two attackers, each run twice
with the same seed and query count, once as a plain client and once as a client hardened with
``PolicyStore.harden(mode="label-only")`` (what the ``harden-outputs`` runbook writes):

  * ``lab_attack``: the lab's extraction attack (console.lab.attacks.extraction, jacobian
    walks). It trains its surrogate on the answered labels alone.
  * ``confidence_attack``: the attacker's own unlabelled digits (the train split, with noise)
    as queries; a logistic regression fitted to the answered probabilities when there are any
    (soft labels: each row once per class, weighted by its probability; distillation), to the
    labels otherwise. Confidences are what label-only answers withhold (Tramer et al. 2016).

Agreement is the share of the held-out digits on which the surrogate and the served version's
ONNX artifact (run locally) give the same label; the ratio is hardened / plain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from console.adapters.policy import PolicyStore
from console.config import Settings, load_settings
from console.lab import services
from console.lab.attacks.common import PIXEL_MAX, digits_split
from console.lab.attacks.extraction import run_extraction, served_predictions

LAB = ["redis", "mlflow", "gateway"]


async def _lab_attack(settings: Settings, client: str, queries: int, rate: float, seed: int) -> Any:
    report = await run_extraction(
        settings, client, rate=rate, budget=queries, duration=600.0, seed=seed, give_up_after=0
    )
    return {
        "queries_answered": report.queries_answered,
        "surrogate_agreement": report.surrogate_agreement,
        "served_version": report.served_version,
    }


async def _confidence_attack(settings: Settings, client: str, queries: int, seed: int) -> Any:
    """Send ``queries`` rows in batches of 50; fit on what the answers hold."""
    from sklearn.linear_model import LogisticRegression

    model = settings.models.served[0]
    rng = np.random.default_rng(seed)
    pool = digits_split().x_train
    noisy = pool[rng.integers(len(pool), size=queries)] + rng.normal(0.0, 1.0, (queries, 64))
    x = np.clip(noisy, 0.0, PIXEL_MAX)
    labels: list[int] = []
    probabilities: list[list[float]] = []
    version = None
    async with httpx.AsyncClient(base_url=settings.gateway.url, timeout=30, trust_env=False) as c:
        for start in range(0, queries, 50):
            rows = x[start : start + 50]
            tensor = {"name": "input", "shape": [len(rows), 64], "datatype": "FP32"}
            reply = await c.post(
                f"/v2/models/{model}/infer",
                json={"inputs": [{**tensor, "data": rows.tolist()}]},
                headers={"X-Client-Id": client},
            )
            reply.raise_for_status()
            doc = reply.json()
            version = doc["model_version"]
            outputs = {o["name"]: o["data"] for o in doc["outputs"]}
            labels += outputs["label"]
            if "probabilities" in outputs:
                flat = outputs["probabilities"]
                probabilities += [flat[i : i + 10] for i in range(0, len(flat), 10)]
    features = x / PIXEL_MAX
    split = digits_split()
    test = split.x_test / PIXEL_MAX
    surrogate = LogisticRegression(max_iter=1000)
    if probabilities:
        soft = np.asarray(probabilities)
        classes = soft.shape[1]
        surrogate.fit(
            np.repeat(features, classes, axis=0),
            np.tile(np.arange(classes), len(features)),
            sample_weight=soft.reshape(-1) + 1e-9,
        )
        fitted_on = "probabilities"
    else:
        surrogate.fit(features, np.asarray(labels))
        fitted_on = "labels"
    predicted = surrogate.predict(test)
    served = served_predictions(settings, model, version, split.x_test)
    return {
        "queries_answered": len(labels),
        "fitted_on": fitted_on,
        "surrogate_agreement": round(float((predicted == served).mean()), 4),
        "served_version": version,
    }


def _ratio(hardened: Any, plain: Any) -> float | None:
    a, b = hardened["surrogate_agreement"], plain["surrogate_agreement"]
    return None if a is None or not b else round(a / b, 3)


async def _run(settings: Settings, queries: int, rate: float, seed: int) -> Any:
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(settings.redis.url)
    store = PolicyStore(redis, settings.redis.key_prefix)
    stamp = time.strftime("%H%M%S")
    results: dict[str, Any] = {"queries": queries}
    try:
        for attack in ("lab_attack", "confidence_attack"):
            plain_id, hardened_id = (
                f"bench-hrd-{stamp}-{attack}-plain",
                f"bench-hrd-{stamp}-{attack}",
            )
            await store.harden(
                hardened_id, "label-only", 2, timedelta(minutes=30), "bench", f"bench-{stamp}"
            )
            trial: dict[str, Any] = {}
            for name, client in (("plain", plain_id), ("label_only", hardened_id)):
                if attack == "lab_attack":
                    trial[name] = await _lab_attack(settings, client, queries, rate, seed)
                else:
                    trial[name] = await _confidence_attack(settings, client, queries, seed)
            trial["ratio_agreement_label_only_vs_plain"] = _ratio(
                trial["label_only"], trial["plain"]
            )
            await store.unharden(hardened_id)
            results[attack] = trial
    finally:
        await redis.aclose()
    return results


def run(config: Path, queries: int, rate: float, seed: int) -> dict[str, Any]:
    settings = load_settings(config)
    services.up(settings, LAB)
    return asyncio.run(_run(settings, queries, rate, seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    results = run(args.config, args.queries, args.rate, args.seed)
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
