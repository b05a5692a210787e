"""The seed versions' recorded robustness: ``lab up`` evaluates each version of the lab's seed
model that has no record the gate would believe (``robustness_trust``: none, unreadable, of
another artifact or version, untrusted) or one measured more weakly than ``[robustness]`` asks
(an attack left out, fewer samples, another epsilon: ``robustness.measurement_misses``), with
``aml-console eval``'s service, and records it, so the promotion gate has something to read in
the demo. A version with an adequate record is skipped: an existing lab gets its records on its
next ``lab up``, and later ones cost one registry read. A version that cannot be evaluated (an
unsigned or changed artifact) is logged and left without a record: it never stops ``lab up``.

Quick on purpose: the lab context's ``[robustness]`` asks for 50 inputs and 1000 queries
(measured ~3 s a version after ~4 s of imports, ART and scikit-learn, once per process). The
attacks are ``[robustness] attacks``, by default every one, the ``backdoor`` trigger probe
among them (298 patches on the ~50 inputs: ~14,000 model rows in 11 calls, ~0.1 s). The seed's
logistic regression scores 1.0 on that probe: its scaler turns a near-constant pixel into a
trigger of its own (one bright pixel at row 2, column 0 makes every digit an 8).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from console.adapters.backends import Backends
from console.config import Settings
from console.errors import ConsoleError
from console.evaluation.model import EvaluationRequest
from console.evaluation.service import evaluate
from console.lab.seed_train import KINDS
from console.robustness import measurement_misses
from console.robustness_trust import record_trust, trusted_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedEvaluation:
    version: str
    evaluated: bool
    """False: skipped, its record was usable and had every configured attack."""
    seconds: float = 0.0
    max_adversarial_success: float | None = None
    error: str = ""
    """Why the version could not be evaluated (it is left without a record)."""


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
    trust = record_trust(settings)
    gate = settings.robustness
    done = []
    for version in await registry.list_versions(name):
        if version.tags.get("model_kind") not in KINDS:
            continue  # an attack's or a team's version: evaluated when someone asks
        found = trusted_record(version.tags, trust, model=name, version=version.version)
        if found.record is not None and not measurement_misses(found.record, gate):
            done.append(SeedEvaluation(version.version, False))
            continue
        started = time.perf_counter()
        request = EvaluationRequest(
            model=name, version=version.version, samples=gate.samples, budget=gate.budget
        )
        try:
            result = await evaluate(settings, request, backends=backends)
        except ConsoleError as exc:
            # One version the lab cannot evaluate (unsigned, a changed artifact) must not stop
            # `lab up`: the gate refuses it for want of a record, and the gateway refuses it.
            log.warning("seed evaluation of %s version %s: %s", name, version.version, exc)
            done.append(SeedEvaluation(version.version, False, error=str(exc)[:300]))
            continue
        done.append(
            SeedEvaluation(
                version.version,
                True,
                round(time.perf_counter() - started, 3),
                result.record.max_adversarial_success,
            )
        )
    return done


__all__ = ["SeedEvaluation", "ensure_seed_evaluations"]
