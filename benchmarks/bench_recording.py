"""Recording one evaluation in MLflow (``console.evaluation.recording``): REST calls and wall
time of the way it is written now against the two ways it was written before, in the same run.

    python benchmarks/bench_recording.py [--config configs/lab.toml] [--rounds 7]

Brings up (or reuses) the config's MLflow, registers a model of its own (``bench-rec-<hex>``)
and records a record of the shape ``aml-console eval`` writes (four attacks, three strengths)
on its version 2, ``--rounds`` times each way, alternating:
  * one_by_one: every metric, then every version tag, one call after the other;
  * gathered:   the previous code: one ``log-metric`` call per metric and one ``set-tag`` call
                per version tag, all in flight at once;
  * batched_tags_in_turn: the metrics batched, the version tags one after the other;
  * batched:    now: the metrics in one ``runs/log-batch`` call beside the report's upload, the
                version tags at most ``TAG_CONCURRENCY`` in flight, the record and its
                signature last.
Prints the median seconds, the calls per recording and the ratios to ``one_by_one``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import secrets
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from console.adapters.mlflow import MlflowRegistry
from console.config import load_settings
from console.evaluation import recording
from console.lab import services
from console.lab.seed import seed_model
from console.robustness import RECORD_TAG, AttackFigures, RobustnessRecord
from console.robustness_seal import SIGNATURE_TAG


def _record(model: str, sha256: str) -> RobustnessRecord:
    curve = {"1.0": 0.4, "2.0": 0.9, "4.0": 1.0}
    attacks = {
        name: AttackFigures(
            attack=name,
            adversarial_success_rate=0.4,
            by_strength=curve if name in ("fgsm", "pgd") else {},
            detector_recall=0.6,
            queries=400.0 if name == "hopskipjump" else None,
            samples=50,
        )
        for name in ("fgsm", "pgd", "hopskipjump")
    }
    attacks["extraction"] = AttackFigures(
        attack="extraction", surrogate_agreement=0.94, budget=1000, queries=1000, samples=50
    )
    return RobustnessRecord(
        model=model,
        version="2",
        onnx_sha256=sha256,
        evaluated_at="2026-12-03T12:00:00Z",
        clean_accuracy=0.97,
        detector_fpr=0.01,
        detector_threshold=0.5,
        epsilon=1.0,
        samples=50,
        attacks=attacks,
    )


async def _previous(
    registry: MlflowRegistry,
    record: RobustnessRecord,
    report: dict[str, Any],
    key: bytes | None,
    *,
    at_once: bool,
) -> None:
    """The recording as it was: a call per metric and per tag (in turn, or all at once)."""

    async def each(calls: list[Any]) -> None:
        if at_once:
            await asyncio.gather(*calls)
        else:
            for call in calls:
                await call

    experiment = await recording._experiment(registry)
    now = recording._ms()
    run = await registry.create_run(experiment, "bench", now, tags={"aml.model": record.model})
    record = record.model_copy(update={"run_id": run.run_id})
    metrics = recording.metrics_of(record)
    await each([registry.log_metric(run.run_id, k, v, now) for k, v in metrics.items()])
    content = json.dumps({**report, "run_id": run.run_id}).encode()
    await registry.log_artifact(f"{run.artifact_uri.rstrip('/')}/{recording.REPORT}", content)
    await registry.update_run(run.run_id, "FINISHED", recording._ms())
    tags = record.signed_tags(key)
    last = {k: tags.pop(k) for k in (RECORD_TAG, SIGNATURE_TAG) if k in tags}
    await each(
        [registry.set_version_tags(record.model, record.version, {k: v}) for k, v in tags.items()]
    )
    await registry.set_version_tags(record.model, record.version, last)


class _Counting(MlflowRegistry):
    calls = 0

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls += 1
        return await super()._call(method, path, **kwargs)

    async def log_artifact(self, uri: str, content: bytes) -> None:
        self.calls += 1
        await super().log_artifact(uri, content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    settings = load_settings(args.config)
    services.up(settings, ["mlflow"])
    url = settings.mlflow.url
    seeded = seed_model(url, f"bench-rec-{secrets.token_hex(4)}")
    key = recording.signing_key(settings)
    record = _record(seeded.name, seeded.sha256["2"])
    report = {"bench": uuid.uuid4().hex, "attacks": {}}
    ways = ("one_by_one", "gathered", "batched_tags_in_turn", "batched")
    bounded = recording.set_tags_bounded
    seconds: dict[str, list[float]] = {w: [] for w in ways}
    calls: dict[str, int] = {}

    async def once(way: str) -> None:
        registry = _Counting(MlflowRegistry.connect(url, 30.0)._client)
        try:
            started = time.perf_counter()
            if way.startswith("batched"):
                limit = 1 if way == "batched_tags_in_turn" else recording.TAG_CONCURRENCY
                recording.set_tags_bounded = functools.partial(bounded, limit=limit)  # type: ignore[assignment]
                try:
                    await recording.record_evaluation(registry, record, report, key)
                finally:
                    recording.set_tags_bounded = bounded  # type: ignore[assignment]
            else:
                await _previous(registry, record, report, key, at_once=way == "gathered")
            seconds[way].append(time.perf_counter() - started)
            calls[way] = registry.calls
        finally:
            with contextlib.suppress(Exception):
                await registry.aclose()

    for _ in range(args.rounds):
        for way in ways:
            asyncio.run(once(way))
    base = statistics.median(seconds["one_by_one"])
    print(f"MLflow {url}, {len(recording.metrics_of(record))} metrics, {args.rounds} rounds")
    print(f"{'way':<21} {'calls':>6} {'median s':>9} {'min s':>7} {'vs one_by_one':>14}")
    for way in ways:
        median = statistics.median(seconds[way])
        print(
            f"{way:<21} {calls[way]:>6} {median:>9.3f} {min(seconds[way]):>7.3f} "
            f"{median / base:>13.2f}x"
        )


if __name__ == "__main__":
    main()
