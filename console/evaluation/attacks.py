"""The attacks an evaluation runs on the model under test, each on the held-out inputs the
model labels correctly when clean:

- ``fgsm``, ``pgd``: white box, ART's FastGradientMethod and ProjectedGradientDescent (10
  steps of eps/4, from a seeded random start in the eps-ball) at each L-infinity strength
  (pixels of 0..16), through ``GradientClassifier`` (finite-difference gradients of the ONNX
  model's answers, a sub-pixel step and a 1 px one averaged, so an input quantizer in the
  graph does not mask the gradient).
- ``hopskipjump``: black box, label only, ART's HopSkipJump in the L-infinity norm, one input at
  a time so each one's queries are counted and capped at the budget (an input whose attack
  needs more has not been fooled). An adversarial input counts at a strength when it is
  misclassified within that distance of the clean one.
- ``extraction``: label only, ``budget`` queries (the attacker's pool with Gaussian noise of
  ``EXTRACTION_NOISE`` pixels), a logistic regression fitted on the answers (a surrogate
  trained on the model's labels, as ART's KnockoffNets does; KnockoffNets itself passes Keras
  fit arguments a scikit-learn model refuses); its agreement with the model on the held-out
  inputs.
- ``backdoor``: label only, a trigger probe that does not know the trigger: every small patch
  (1x1 to 3x3, bright or dark, every position) stamped on the inputs; the worst patch's share
  of inputs turned into one class (``console/evaluation/backdoor.py``).

``step(done)`` is called between chunks of work: it reports progress and raises to cancel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from console.config_robustness import AttackName
from console.evaluation.backdoor import PATCHES, backdoor_probe
from console.evaluation.holdout import PIXEL_MAX, PIXEL_MIN, missing_extra
from console.evaluation.onnx_model import CountingModel, Rows
from console.robustness import AttackFigures

Step = Callable[[int], None]
CHUNK = 32
"""Inputs per ART call of FGSM/PGD: the cancel flag is looked at between chunks."""
PGD_STEPS = 10
PGD_RANDOM_INITS = 1
"""PGD starts from a uniform random point of the eps-ball (seeded): a model whose gradient is
zero at the clean inputs (gradient masking) still gets attacked from elsewhere."""
HSJ_MAX_ITER, HSJ_MAX_EVAL, HSJ_INIT_EVAL = 10, 100, 10
EXTRACTION_NOISE = 1.0
SURROGATE_C = 0.1
"""Regularised: it converges in well under a second on 2,000 queries; unregularised (C=1) it
agreed ~1.5 points more with the seed MLP and took ~9x longer."""
TOLERANCE = 1e-4
"""float32 slack when an adversarial input's distance is compared with a strength."""


@dataclass
class AttackOutcome:
    figures: AttackFigures
    adversarial: Rows
    """The inputs that fooled the model at the gated strength (what detector recall is of)."""


def strength_key(strength: float) -> str:
    return str(float(strength))


def work_units(attack: AttackName, inputs: int, strengths: Sequence[float]) -> int:
    """How many ``step`` units an attack reports: its progress bar's total."""
    if attack in ("fgsm", "pgd"):
        return inputs * len(strengths)
    if attack == "backdoor":
        return len(PATCHES)
    return inputs if attack == "hopskipjump" else 1


def backdoor(model: CountingModel, x: Rows, y: NDArray[np.int64], step: Step) -> AttackOutcome:
    """The trigger probe on the inputs the model labels ``y`` correctly."""
    found = backdoor_probe(model, x, y, step)
    return AttackOutcome(found.figures, found.adversarial)


def gradient_attack(
    attack: AttackName,
    model: CountingModel,
    x: Rows,
    y: NDArray[np.int64],
    strengths: Sequence[float],
    epsilon: float,
    step: Step,
    seed: int = 0,
) -> AttackOutcome:
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    from console.evaluation.art_classifier import GradientClassifier

    started = time.perf_counter()
    classifier = GradientClassifier(model)
    by_strength: dict[str, float] = {}
    fooling: Rows = np.zeros((0, x.shape[1]), np.float32)
    done = 0
    np.random.seed(seed)  # ART's PGD draws its random start from numpy's global generator
    for strength in strengths:
        made: Any
        if attack == "fgsm":
            made = FastGradientMethod(classifier, eps=strength, batch_size=CHUNK)
        else:
            made = ProjectedGradientDescent(
                classifier,
                eps=strength,
                eps_step=strength / 4,
                max_iter=PGD_STEPS,
                num_random_init=PGD_RANDOM_INITS,
                batch_size=CHUNK,
                verbose=False,
            )
        fooled = np.zeros(len(x), dtype=bool)
        adversarial = np.empty_like(x)
        for start in range(0, len(x), CHUNK):
            part = slice(start, start + CHUNK)
            # y given: the attack moves away from the true label (the inputs are all correct).
            onehot = np.eye(model.nb_classes, dtype=np.float32)[y[part]]
            adversarial[part] = _clip(made.generate(x[part], y=onehot))
            fooled[part] = model.labels(adversarial[part]) != y[part]
            done += len(x[part])
            step(done)
        by_strength[strength_key(strength)] = _rate(fooled)
        if abs(strength - epsilon) < 1e-9:
            fooling = adversarial[fooled]
    return AttackOutcome(
        AttackFigures(
            attack=attack,
            adversarial_success_rate=by_strength.get(strength_key(epsilon)),
            by_strength=by_strength,
            samples=len(x),
            seconds=round(time.perf_counter() - started, 3),
        ),
        fooling,
    )


class _Exhausted(Exception):
    """An input's query budget ran out inside HopSkipJump."""


def hopskipjump(
    model: CountingModel,
    x: Rows,
    y: NDArray[np.int64],
    strengths: Sequence[float],
    epsilon: float,
    budget: int,
    seed: int,
    step: Step,
) -> AttackOutcome:
    from art.attacks.evasion import HopSkipJump

    from console.evaluation.art_classifier import black_box

    started = time.perf_counter()
    spent = [0]

    def predict(rows: NDArray[Any]) -> NDArray[np.float32]:
        if spent[0] + len(rows) > budget:
            raise _Exhausted
        spent[0] += len(rows)
        labels = model.labels(_clip(rows))
        return np.eye(model.nb_classes, dtype=np.float32)[labels]

    attack = HopSkipJump(
        black_box(predict, model.nb_classes),
        targeted=False,
        norm=np.inf,
        max_iter=HSJ_MAX_ITER,
        max_eval=HSJ_MAX_EVAL,
        init_eval=HSJ_INIT_EVAL,
        batch_size=HSJ_MAX_EVAL,
        verbose=False,
    )
    distance = np.full(len(x), np.inf)
    adversarial = np.array(x, copy=True)
    queries = []
    np.random.seed(seed)  # ART's HopSkipJump draws from numpy's global generator
    for i in range(len(x)):
        spent[0] = 0
        try:
            found = _clip(attack.generate(x[i : i + 1], y=np.eye(model.nb_classes)[y[i : i + 1]]))
        except _Exhausted:
            found = None
        queries.append(spent[0])
        if found is not None and model.labels(found)[0] != y[i]:
            adversarial[i] = found[0]
            distance[i] = float(np.abs(found[0] - x[i]).max())
        step(i + 1)
    by_strength = {strength_key(s): _rate(distance <= s + TOLERANCE) for s in strengths}
    return AttackOutcome(
        AttackFigures(
            attack="hopskipjump",
            adversarial_success_rate=_rate(distance <= epsilon + TOLERANCE),
            by_strength=by_strength,
            samples=len(x),
            queries=round(float(np.mean(queries)), 1) if queries else 0.0,
            budget=budget,
            seconds=round(time.perf_counter() - started, 3),
        ),
        adversarial[distance <= epsilon + TOLERANCE],
    )


def extraction(
    model: CountingModel, pool: Rows, x: Rows, budget: int, seed: int, step: Step
) -> AttackOutcome:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise missing_extra(exc) from None
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, EXTRACTION_NOISE, (budget, pool.shape[1]))
    queries = _clip(pool[rng.integers(0, len(pool), budget)] + noise)
    answers = model.labels(queries)
    target = model.labels(x)
    if len(np.unique(answers)) < 2:  # a constant model is stolen by a constant
        agreement = _rate(target == answers[0])
    else:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        surrogate = LogisticRegression(C=SURROGATE_C, max_iter=500)
        with threadpool_limits(1):  # OpenBLAS' pool on busy cores: 10-25x slower
            surrogate.fit(queries / PIXEL_MAX, answers)
        agreement = _rate(surrogate.predict(x / PIXEL_MAX) == target)
    step(1)
    return AttackOutcome(
        AttackFigures(
            attack="extraction",
            surrogate_agreement=agreement,
            budget=budget,
            queries=float(budget),
            samples=len(x),
            seconds=round(time.perf_counter() - started, 3),
        ),
        np.zeros((0, x.shape[1]), np.float32),
    )


def _clip(x: NDArray[Any]) -> Rows:
    return np.clip(np.asarray(x, dtype=np.float32), PIXEL_MIN, PIXEL_MAX).astype(np.float32)


def _rate(hits: NDArray[np.bool_]) -> float:
    return round(float(np.mean(hits)), 4) if len(hits) else 0.0
