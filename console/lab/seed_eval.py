"""The seed versions' recorded robustness: ``lab up`` evaluates each version of the lab's seed
model that has no usable record (``robustness.recorded_robustness``: none, unreadable, of
another artifact, untrusted) with ``aml-console eval``'s service and records it, so the
promotion gate has something to read in the demo. A version with a usable record is skipped:
an existing lab gets its records on its next ``lab up``, and later ones cost one registry read.

Quick on purpose (``LAB_SAMPLES`` inputs, ``LAB_BUDGET`` queries): measured ~3 s a version
after ~4 s of imports (ART, scikit-learn) once per process; ``aml-console eval`` runs the full
``[robustness]`` defaults.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from console.adapters.backends import Backends
from console.config import Settings
from console.errors import ConsoleError, LabError
from console.evaluation.model import EvaluationRequest
from console.evaluation.recording import trusted_keys
from console.evaluation.service import evaluate
from console.lab.seed_train import KINDS
from console.robustness import recorded_robustness

LAB_SAMPLES = 50
LAB_BUDGET = 1000
"""HopSkipJump needs ~400 queries an input at [robustness]'s 10 iterations: 1000 caps none."""


@dataclass(frozen=True)
class SeedEvaluation:
    version: str
    evaluated: bool
    """False: skipped, its record was usable."""
    seconds: float = 0.0
    max_adversarial_success: float | None = None


def ensure_seed_evaluations(settings: Settings, model: str | None = None) -> list[SeedEvaluation]:
    """Evaluate and record each seed version (``model_kind`` logreg or mlp) of ``model``
    (default ``[lab] seed_model``) lacking a usable record. Raises LabError naming the version
    whose evaluation failed."""
    name = model or settings.lab.seed_model
    if settings.read_only:  # lab up refuses first; nothing here writes in read-only mode
        return []

    async def run() -> list[SeedEvaluation]:
        backends = Backends(settings)
        try:
            return await _evaluate_missing(settings, backends, name)
        finally:
            await backends.aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    with ThreadPoolExecutor(max_workers=1) as pool:  # called from a coroutine (an async test)
        return pool.submit(asyncio.run, run()).result()


async def _evaluate_missing(
    settings: Settings, backends: Backends, name: str
) -> list[SeedEvaluation]:
    registry = backends.registry
    keys = trusted_keys(settings)
    done = []
    for version in await registry.list_versions(name):
        if version.tags.get("model_kind") not in KINDS:
            continue  # an attack's or a team's version: evaluated when someone asks
        found = recorded_robustness(version.tags, version.tags.get("onnx_sha256", ""), keys)
        if found.usable:
            done.append(SeedEvaluation(version.version, False))
            continue
        started = time.perf_counter()
        request = EvaluationRequest(
            model=name, version=version.version, samples=LAB_SAMPLES, budget=LAB_BUDGET
        )
        try:
            result = await evaluate(settings, request, backends=backends)
        except ConsoleError as exc:
            raise LabError(f"seed evaluation of {name} version {version.version}: {exc}") from None
        done.append(
            SeedEvaluation(
                version.version,
                True,
                round(time.perf_counter() - started, 3),
                result.record.max_adversarial_success,
            )
        )
    return done


__all__ = ["LAB_BUDGET", "LAB_SAMPLES", "SeedEvaluation", "ensure_seed_evaluations"]
