"""``aml-console eval`` of one version, and what the attacks cost in model calls against
onnxruntime called directly on the same batches, in the same run.

    python benchmarks/bench_eval.py [--config configs/lab.toml] [--samples 200] [--budget 2000]

Brings up (or reuses) the config's MLflow with the project's launcher, registers a model of its
own (``bench-eval-<hex>``: the seed's two versions, so the lab's ``digits`` records stay as
they are) and measures:
  * eval:      the service end to end on version 2 (the MLP) with every attack, as
               ``aml-console eval`` runs it minus printing: registry, download, sha256 and
               signature checks, the five attacks, the detector, the MLflow run and tags;
               ``cold`` in a fresh process's first call (ART and scikit-learn imports), then
               ``warm``; ``lab_seed`` the lab's quick evaluation (``console.lab.seed_eval``);
  * attacks:   each attack alone on a counting session that logs every batch: its wall time,
               model rows and ``session.run`` calls, then the same batches (same sizes, held-out
               rows) through ``session.run`` directly. ``overhead`` = attack seconds over direct
               onnxruntime seconds: what ART, finite differences and Python add per model call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from console.adapters.mlflow import MlflowRegistry
from console.config import load_settings
from console.evaluation import attacks
from console.evaluation.holdout import load_holdout
from console.evaluation.model import EvaluationRequest
from console.evaluation.onnx_model import CallLog, CountingModel
from console.evaluation.service import evaluate
from console.lab import services
from console.lab.seed import seed_model
from console.model_artifacts import INPUT_NAME, OUTPUTS, check_sha256, make_plain_session


def _session(url: str, model: str, version: str, sha256: str) -> Any:
    async def download() -> bytes:
        registry = MlflowRegistry.connect(url, 30.0)
        try:
            return await registry.download_artifact(model, version)
        finally:
            await registry.aclose()

    onnx = asyncio.run(download())
    check_sha256(model, version, sha256, onnx)
    return make_plain_session(onnx)


def _attack(name: str, session: Any, samples: int, budget: int) -> dict[str, Any]:
    holdout = load_holdout()
    x, y = holdout.pick(samples, 0)
    model = CountingModel(session, log=CallLog(batches=[]))
    correct = model.labels(x) == y
    xs, ys = x[correct], y[correct]
    model.log = CallLog(batches=[])
    strengths = (1.0, 2.0, 4.0)
    started = time.perf_counter()
    if name in ("fgsm", "pgd"):
        attacks.gradient_attack(name, model, xs, ys, strengths, 1.0, lambda _: None)  # type: ignore[arg-type]
    elif name == "hopskipjump":
        attacks.hopskipjump(model, xs, ys, strengths, 1.0, budget, 0, lambda _: None)
    elif name == "backdoor":
        attacks.backdoor(model, xs, ys, lambda _: None)
    else:
        attacks.extraction(model, holdout.pool, x, budget, 0, lambda _: None)
    seconds = time.perf_counter() - started
    batches = model.log.batches or []
    rows = np.resize(holdout.x, (max(batches, default=1), 64)).astype(np.float32)
    direct = time.perf_counter()
    for size in batches:
        session.run(list(OUTPUTS), {INPUT_NAME: rows[:size]})
    direct_s = time.perf_counter() - direct
    one_pass = float(np.median([_timed(session, xs) for _ in range(5)]))
    return {
        "seconds": round(seconds, 3),
        "model_rows": model.log.rows,
        "model_calls": model.log.calls,
        "calls_per_s": round(model.log.calls / seconds, 1),
        "rows_per_s": round(model.log.rows / seconds, 1),
        "direct_onnxruntime_s": round(direct_s, 4),
        "direct_calls_per_s": round(model.log.calls / direct_s, 1),
        "direct_rows_per_s": round(model.log.rows / direct_s, 1),
        "overhead": round(seconds / direct_s, 1),
        # Model rows over the attacked inputs: how many passes of them the attack ran, and its
        # wall time over one direct pass of them (the median of 5, in this run).
        "held_out_passes": round(model.log.rows / max(len(xs), 1), 1),
        "one_pass_s": round(one_pass, 5),
        "wall_in_passes": round(seconds / one_pass, 1),
    }


def _timed(session: Any, x: Any) -> float:
    started = time.perf_counter()
    session.run(list(OUTPUTS), {INPUT_NAME: x})
    return time.perf_counter() - started


def run(config: Path, samples: int, budget: int) -> dict[str, Any]:
    warnings.simplefilter("ignore")  # ART's note about the frameworks it lacks
    settings = load_settings(config)
    services.up(settings, ["mlflow"])
    url = settings.mlflow.url
    seeded = seed_model(url, f"bench-eval-{secrets.token_hex(4)}")
    request = EvaluationRequest(seeded.name, "2", samples=samples, budget=budget)
    cold = asyncio.run(evaluate(settings, request))
    warm = asyncio.run(evaluate(settings, request))
    lab_request = EvaluationRequest(seeded.name, "1", samples=50, budget=1000)
    lab_seed = asyncio.run(evaluate(settings, lab_request))
    session = _session(url, seeded.name, "2", seeded.sha256["2"])
    return {
        "model": seeded.name,
        "samples": samples,
        "budget": budget,
        "eval_s": {"cold": cold.seconds, "warm": warm.seconds, "lab_seed": lab_seed.seconds},
        "eval_attack_s": {k: v.seconds for k, v in warm.record.attacks.items()},
        "attacks": {a: _attack(a, session, samples, budget) for a in attacks_list()},
    }


def attacks_list() -> tuple[str, ...]:
    from console.config_robustness import ATTACKS

    return ATTACKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--budget", type=int, default=2000)
    args = parser.parse_args()
    sys.stdout.write(json.dumps(run(args.config, args.samples, args.budget), indent=2) + "\n")


if __name__ == "__main__":
    main()
