"""An evaluation from request to record: resolve the version, download its artifact and check
its sha256 against the version's ``onnx_sha256`` tag and its signature against the configured
public keys (``model_signing``: nothing unverified runs; nothing is unpickled), run the
attacks on the held-out set (a worker thread), then record the figures (``recording``) unless
the request says not to.

``progress`` is called from the worker thread; setting ``cancel`` stops the run at the next
chunk of work with EvaluationCancelled, and a cancelled run records nothing: the registry is
written only after every figure is measured.
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from console import model_signing
from console.adapters.backends import Backends
from console.adapters.mlflow import MlflowRegistry, ModelVersion
from console.config import Settings
from console.config_robustness import AttackName, RobustnessSection
from console.errors import ArtifactRefused, ParameterError
from console.evaluation.attacks import (
    AttackOutcome,
    backdoor,
    extraction,
    gradient_attack,
    hopskipjump,
    work_units,
)
from console.evaluation.detector import Detector
from console.evaluation.holdout import load_holdout, missing_extra
from console.evaluation.model import (
    EvaluationCancelled,
    EvaluationRequest,
    EvaluationResult,
    Progress,
    ProgressCallback,
)
from console.evaluation.onnx_model import CountingModel
from console.evaluation.recording import record_evaluation, signing_key
from console.model_artifacts import check_sha256, make_plain_session
from console.robustness import RobustnessRecord, measurement_misses


@dataclass(frozen=True)
class Plan:
    attacks: tuple[AttackName, ...]
    samples: int
    budget: int
    epsilon: float
    strengths: tuple[float, ...]
    seed: int


def plan_of(request: EvaluationRequest, section: RobustnessSection) -> Plan:
    strengths = sorted({*section.strengths, section.epsilon})
    return Plan(
        attacks=request.attacks or tuple(section.attacks),
        samples=request.samples or section.samples,
        budget=request.budget or section.budget,
        epsilon=section.epsilon,
        strengths=tuple(strengths),
        seed=section.seed,
    )


async def evaluate(
    settings: Settings,
    request: EvaluationRequest,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    backends: Backends | None = None,
) -> EvaluationResult:
    started = time.perf_counter()
    cancel = cancel or threading.Event()
    report = progress or (lambda _: None)
    plan = plan_of(request, settings.robustness)
    async with AsyncExitStack() as stack:
        if backends is None:
            backends = Backends(settings)
            stack.push_async_callback(backends.aclose)
        registry = backends.registry
        report(Progress("prepare", 0, 1))
        version = await resolve_version(registry, request.model, request.version)
        signing = model_signing.signing_policy(settings)
        sha256, session = await _verified_session(registry, version, signing)
        _check(cancel)
        measured = await asyncio.to_thread(
            _measure, settings, request, plan, version, sha256, session, report, cancel
        )
        record, body = measured
        _check(cancel)
        recorded = False
        # A partial evaluation (another holdout, fewer samples, an attack of the gate left out)
        # is no evidence for the gate: it gets its run, and the version keeps its record.
        partial = [m.why for m in measurement_misses(record, settings.robustness)]
        if request.record:
            report(Progress("record", 0, 1))
            record = await record_evaluation(
                registry, record, body, signing_key(settings), version_record=not partial
            )
            recorded = True
            report(Progress("record", 1, 1))
    body = {
        **body,
        "run_id": record.run_id,
        "recorded": recorded,
        "recorded_record": recorded and not partial,
        "partial": partial,
    }
    return EvaluationResult(record, recorded, body, round(time.perf_counter() - started, 3))


async def resolve_version(registry: MlflowRegistry, model: str, version: str) -> ModelVersion:
    """``version`` as a number, else as an alias of ``model``; ParameterError if neither."""
    await registry.require_model(model)
    number = version.strip()
    if not number.isdigit():
        alias = await registry.get_alias(model, number)
        if alias is None:
            raise ParameterError(f"model {model!r} has no version or alias {number[:40]!r}")
        number = alias
    found = await registry.get_version(model, number)
    if found is None:
        raise ParameterError(f"model {model!r} has no version {number[:40]!r}")
    return found


async def _verified_session(
    registry: MlflowRegistry, version: ModelVersion, signing: model_signing.SigningPolicy
) -> tuple[str, Any]:
    """The artifact's sha256 and its session, once the sha256 matches the version's tag and
    the signature verifies against the policy's keys (as the gateway and replay check it)."""
    name, number = version.name, version.version
    expected = version.tags.get("onnx_sha256", "")
    if not expected.strip():
        raise ArtifactRefused(
            "missing_sha256",
            f"{name} version {number} has no onnx_sha256 tag: an unverified artifact is never run",
        )
    try:
        onnx = await registry.download_artifact(name, number)
        signature = None
        if signing.verifies or signing.required:
            signature = await registry.download_sibling(
                name, number, model_signing.SIGNATURE_SUFFIX, model_signing.MAX_SIGNATURE_BYTES
            )
    except ArtifactRefused as exc:
        raise ArtifactRefused(exc.reason, f"{name} version {number}: {exc}") from None
    sha256 = check_sha256(name, number, expected, onnx)
    await asyncio.to_thread(model_signing.check, signing, name, number, onnx, signature)
    try:
        session = await asyncio.to_thread(make_plain_session, onnx)
    except ArtifactRefused as exc:
        raise ArtifactRefused(exc.reason, f"{name} version {number}: {exc}") from None
    return sha256, session


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise EvaluationCancelled("evaluation cancelled: nothing was recorded")


def _measure(
    settings: Settings,
    request: EvaluationRequest,
    plan: Plan,
    version: ModelVersion,
    sha256: str,
    session: Any,
    report: ProgressCallback,
    cancel: threading.Event,
) -> tuple[RobustnessRecord, dict[str, Any]]:
    try:
        with warnings.catch_warnings():
            # ART warns at import about optional frameworks (PyTorch, TensorFlow) it lacks.
            warnings.simplefilter("ignore")
            import art  # noqa: F401 - fail here, in one line, not inside the first attack
            import sklearn  # noqa: F401
    except ImportError as exc:
        raise missing_extra(exc) from None
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    # One BLAS thread: on 2 busy cores OpenBLAS' pool made the surrogate's fit 10-25x slower.
    with threadpool_limits(1):
        return _measure_all(settings, request, plan, version, sha256, session, report, cancel)


def _measure_all(
    settings: Settings,
    request: EvaluationRequest,
    plan: Plan,
    version: ModelVersion,
    sha256: str,
    session: Any,
    report: ProgressCallback,
    cancel: threading.Event,
) -> tuple[RobustnessRecord, dict[str, Any]]:
    holdout = load_holdout(request.holdout)
    x, y = holdout.pick(plan.samples, plan.seed)
    model = CountingModel(session)
    detector = Detector(session, settings.detectors)
    clean = model.labels(x)
    correct = clean == y
    xs, ys = x[correct], y[correct]
    figures = {}
    costs: dict[str, dict[str, float]] = {}
    report(Progress("prepare", 1, 1))
    for attack in plan.attacks:
        _check(cancel)
        total = work_units(attack, len(xs), plan.strengths)

        def step(done: int, attack: str = attack, total: int = total) -> None:
            report(Progress(attack, done, total))
            _check(cancel)

        before = (model.log.rows, model.log.calls, model.log.seconds)
        outcome = _run(attack, model, holdout.pool, x, xs, ys, plan, step)
        if attack != "extraction":
            outcome.figures.detector_recall = detector.flag_rate(outcome.adversarial)
        figures[attack] = outcome.figures
        rows, calls = model.log.rows - before[0], model.log.calls - before[1]
        costs[attack] = {
            "model_rows": rows,
            "model_calls": calls,
            "onnxruntime_seconds": round(model.log.seconds - before[2], 4),
            "rows_per_second": round(rows / outcome.figures.seconds, 1)
            if outcome.figures.seconds
            else 0.0,
        }
    record = RobustnessRecord(
        model=version.name,
        version=version.version,
        onnx_sha256=sha256,
        evaluated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        clean_accuracy=round(float(correct.mean()), 4) if len(x) else 0.0,
        detector_fpr=detector.flag_rate(x) or 0.0,
        detector_threshold=detector.threshold,
        epsilon=plan.epsilon,
        samples=len(x),
        attacks=figures,
        holdout=holdout.holdout_id,
        unique_samples=int(len(np.unique(x, axis=0))) if len(x) else 0,
        squeezers=list(settings.detectors.squeezers),
    )
    body = {
        **record.model_dump(mode="json"),
        "max_adversarial_success": record.max_adversarial_success,
        "holdout_source": holdout.source,
        "strengths": list(plan.strengths),
        "budget": plan.budget,
        "seed": plan.seed,
        "squeezers": list(settings.detectors.squeezers),
        "correct_clean": int(correct.sum()),
        "cost": costs,
    }
    return record, body


def _run(
    attack: AttackName,
    model: CountingModel,
    pool: np.ndarray[Any, Any],
    x: np.ndarray[Any, Any],
    xs: np.ndarray[Any, Any],
    ys: np.ndarray[Any, Any],
    plan: Plan,
    step: Any,
) -> AttackOutcome:
    if attack in ("fgsm", "pgd"):
        return gradient_attack(
            attack, model, xs, ys, plan.strengths, plan.epsilon, step, seed=plan.seed
        )
    if attack == "hopskipjump":
        return hopskipjump(
            model, xs, ys, plan.strengths, plan.epsilon, plan.budget, plan.seed, step
        )
    if attack == "backdoor":
        return backdoor(model, xs, ys, step)
    return extraction(model, pool, x, plan.budget, plan.seed, step)
