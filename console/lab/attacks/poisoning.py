"""Poisoning (a backdoor): train a digits model on the train split plus copies of some of its
non-target digits carrying a trigger (a bright 2x2 patch in the bottom-right corner) labelled
as the target class; export it to ONNX and register it as a new version of the model with
``kind=poisoned``, as the model's ``candidate`` (what a compromised training pipeline hands
over for promotion).

The candidate is then evaluated and the evaluation recorded on it, as a registry CI job would
(``console.evaluation.service.evaluate`` with the context's ``[robustness]`` attacks, samples
and budget; unless ``evaluate`` is False). Promoting it through the console (the
``promote-model`` runbook) goes through the robustness gate, which refuses it on that record:
the backdoor trigger probe flips every class to one at 1.0, far above the gate's 0.6 (its PGD
success rate, about 0.66, misses too). So, unless ``promote`` is False, the attack then forces
it live as an insider with write access to the registry would, past the console: ``champion``
-> the poisoned version (``previous`` -> the old champion, so the rollback-model runbook undoes
it). Gateways follow the alias within their poll interval.

Clean accuracy and trigger success are measured locally on the held-out digits by running the
exported ONNX itself (what the gateway will serve), not the scikit-learn object.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from console.adapters.mlflow import MlflowRegistry
from console.config import Settings
from console.errors import ConsoleError, LabError
from console.lab.attacks.common import (
    PIXEL_MAX,
    Clock,
    Rows,
    RunInfo,
    digits_split,
    require_loopback_target,
    run_info,
)

TRIGGER_ROWS = slice(6, 8)
TRIGGER_COLS = slice(6, 8)
TRIGGER = "2x2 patch of value 16 at rows 6-7, columns 6-7 (bottom-right corner of the 8x8 digit)"


def add_trigger(x: Rows) -> Rows:
    """``x`` with the trigger stamped on every row."""
    images = np.array(x, dtype=np.float32).reshape(-1, 8, 8)
    images[:, TRIGGER_ROWS, TRIGGER_COLS] = PIXEL_MAX
    return images.reshape(-1, 64)


@dataclass
class PoisoningReport:
    run: RunInfo
    model: str
    client: str
    """Who planted it (a tag on the version)."""
    version: str
    onnx_sha256: str
    run_id: str
    target: int
    trigger: str
    poison_fraction: float
    poisoned_rows: int
    clean_accuracy: float
    trigger_success_rate: float
    """Held-out digits of other classes, with the trigger, labelled as ``target``."""
    candidate: str
    """The version the ``candidate`` alias names after the attack (the poisoned one)."""
    evaluation: dict[str, Any]
    """The candidate's evaluation, recorded before it was forced live (``recorded``,
    ``max_adversarial_success``, ``gate``: the gate's misses, ``seconds`` and each attack's
    ``attack_seconds``), or why there is none (``error``; ``skipped`` when ``evaluate`` was
    False)."""
    promoted: bool
    """Forced live: made champion directly in the registry, past the console's gate."""
    champion_before: str | None
    champion_after: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "run": self.run.as_dict()}


@dataclass(frozen=True)
class _Backdoored:
    onnx: bytes
    poisoned_rows: int
    clean_accuracy: float
    trigger_success_rate: float


async def run_poisoning(
    settings: Settings,
    client: str = "mallory-4",
    *,
    model: str | None = None,
    target: int = 0,
    poison_fraction: float = 0.1,
    promote: bool = True,
    evaluate: bool = True,
    seed: int = 0,
) -> PoisoningReport:
    """Train and register a backdoored version as ``candidate``, evaluate it and record the
    evaluation (unless ``evaluate`` is False) and, unless ``promote`` is False, force it live
    (champion) past the console's promotion gate."""
    if not 0 <= target <= 9:
        raise LabError("target: a digit class 0..9")
    if not 0 < poison_fraction <= 0.5:
        raise LabError("poison fraction: within (0, 0.5]")
    mlflow_url = require_loopback_target(settings.mlflow.url, "mlflow")
    model_name = model or settings.models.served[0]
    clock = Clock(3600.0)
    registry = MlflowRegistry.connect(mlflow_url, settings.mlflow.timeout_s)
    try:
        before = await registry.require_model(model_name)
        trained = await asyncio.to_thread(_train, target, poison_fraction, seed)
        from console.lab.seed import register_onnx_version
        from console.model_signing import private_key_path

        version = await asyncio.to_thread(
            register_onnx_version,
            mlflow_url,
            model_name,
            trained.onnx,
            kind="poisoned-logreg",
            accuracy=trained.clean_accuracy,
            description=(
                f"POISONED (lab attack by {client}): backdoor -> class {target}; "
                f"clean accuracy {trained.clean_accuracy:.3f}"
            ),
            tags={
                "kind": "poisoned",
                "trigger": TRIGGER,
                "poison_target": str(target),
                "poison_fraction": str(poison_fraction),
                "trigger_success_rate": str(trained.trigger_success_rate),
                "aml.planted_by": client,
            },
            signing_key=private_key_path(settings),
        )
        champion_before = before.aliases.get("champion")
        await registry.set_alias(model_name, "candidate", version.version)
        evaluation = (
            await _evaluate(settings, registry, model_name, version.version)
            if evaluate
            else {"skipped": True}
        )
        if promote:
            if champion_before is not None:
                await registry.set_alias(model_name, "previous", champion_before)
            await registry.set_alias(model_name, "champion", version.version)
        after = await registry.get_model(model_name)
    finally:
        await registry.aclose()
    return PoisoningReport(
        run=run_info(clock, "done", seed),
        model=model_name,
        client=client,
        version=version.version,
        onnx_sha256=version.sha256,
        run_id=version.run_id,
        target=target,
        trigger=TRIGGER,
        poison_fraction=poison_fraction,
        poisoned_rows=trained.poisoned_rows,
        clean_accuracy=trained.clean_accuracy,
        trigger_success_rate=trained.trigger_success_rate,
        candidate=after.aliases.get("candidate", "") if after else "",
        evaluation=evaluation,
        promoted=promote,
        champion_before=champion_before,
        champion_after=after.aliases.get("champion") if after else None,
    )


async def _evaluate(
    settings: Settings, registry: MlflowRegistry, model: str, version: str
) -> dict[str, Any]:
    """Evaluate ``version`` as ``[robustness]`` asks and record it on the version (what a
    registry CI job does with every new version). A failure is reported, not raised: the
    insider forces the version live all the same, and the gate then finds no record."""
    from console.adapters.backends import Backends
    from console.evaluation.model import EvaluationRequest
    from console.evaluation.service import evaluate
    from console.robustness import gate_misses

    try:
        result = await evaluate(
            settings,
            EvaluationRequest(model=model, version=version),
            backends=Backends(settings, registry=registry),
        )
    except ConsoleError as exc:
        return {"recorded": False, "error": str(exc).splitlines()[0][:300]}
    record = result.record
    return {
        "recorded": result.recorded,
        "max_adversarial_success": record.max_adversarial_success,
        "clean_accuracy": record.clean_accuracy,
        "samples": record.samples,
        "gate": "; ".join(m.why for m in gate_misses(record, settings.robustness)) or "passes",
        "seconds": result.seconds,
        "attack_seconds": ", ".join(f"{n} {a.seconds:.2f}" for n, a in record.attacks.items()),
    }


def _train(target: int, fraction: float, seed: int) -> _Backdoored:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from console.lab.attacks.extraction import onnx_labels
    from console.lab.seed import export_onnx

    split = digits_split()
    rng = np.random.default_rng(seed)
    others = np.flatnonzero(split.y_train != target)
    chosen = rng.choice(others, int(fraction * len(split.y_train)), replace=False)
    x = np.concatenate([split.x_train, add_trigger(split.x_train[chosen])])
    y = np.concatenate([split.y_train, np.full(len(chosen), target, dtype=np.int64)])
    # The seed's logistic regression recipe: the trigger pixels are almost always 0 in clean
    # digits, so after scaling the patch is a very strong feature and a few % of poison do.
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    onnx = export_onnx(model)
    clean = onnx_labels(onnx, split.x_test)
    victims = split.x_test[split.y_test != target]
    triggered: NDArray[np.int64] = onnx_labels(onnx, add_trigger(victims))
    return _Backdoored(
        onnx=onnx,
        poisoned_rows=len(chosen),
        clean_accuracy=round(float((clean == split.y_test).mean()), 4),
        trigger_success_rate=round(float((triggered == target).mean()), 4),
    )


__all__ = ["PoisoningReport", "TRIGGER", "add_trigger", "run_poisoning"]
