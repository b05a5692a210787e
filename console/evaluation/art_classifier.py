"""The model under test as ART estimators: ``GradientClassifier`` (white box for FGSM and PGD,
its loss gradients by central finite differences of the ONNX model's own probabilities: the
artifact is an opaque graph, and this needs nothing but its answers), and ``black_box`` (the
label-only view HopSkipJump and KnockoffNets query).

ART (~2 s) is imported with this module: only ``attacks`` imports it, inside the attack.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from console.evaluation.holdout import PIXEL_MAX, PIXEL_MIN, WIDTH, missing_extra
from console.evaluation.onnx_model import CountingModel, loss_gradient

try:
    with warnings.catch_warnings():
        # ART warns at import about optional frameworks (PyTorch, TensorFlow) it lacks.
        warnings.simplefilter("ignore")
        from art.estimators.classification import BlackBoxClassifier
        from art.estimators.classification.classifier import ClassifierMixin
        from art.estimators.estimator import BaseEstimator, LossGradientsMixin
except ImportError as exc:  # pragma: no cover - the lab extra is missing
    raise missing_extra(exc) from None

FD_STEP = 0.05
"""The small finite-difference step, pixels (of 0..16): small against FGSM's 1..4, large enough
that the float32 probabilities still differ. Alone it is blind to an input quantizer: a model
whose graph rounds its input has an exactly zero difference at every integer pixel."""
QUANTUM = 1.0
"""The data's quantum (digits pixels are integers): a step no input quantizer of that grain can
hide a slope from (gradient masking, BPDA-like: the difference of the model across a pixel)."""
FD_STEPS = (FD_STEP, QUANTUM)
"""The steps whose gradients ``GradientClassifier`` averages (each scaled to unit L1 norm per
input first, so neither dominates): on a smooth model both point the same way; on a masked one
the small step's is zero and the quantum's carries the attack."""


class GradientClassifier(LossGradientsMixin, ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """An ART classifier with loss gradients over a ``CountingModel``."""

    estimator_params = BaseEstimator.estimator_params + ClassifierMixin.estimator_params

    def __init__(self, model: CountingModel, steps: tuple[float, ...] = FD_STEPS) -> None:
        super().__init__(model=model, clip_values=(PIXEL_MIN, PIXEL_MAX))
        self._counting = model
        self._steps = steps
        self.nb_classes = model.nb_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (WIDTH,)

    def predict(self, x: NDArray[Any], batch_size: int = 0, **kwargs: Any) -> NDArray[np.float32]:
        return self._counting.probabilities(x)

    def fit(self, x: NDArray[Any], y: NDArray[Any], **kwargs: Any) -> None:
        raise NotImplementedError("the model under test is not trained here")

    def loss_gradient(self, x: NDArray[Any], y: NDArray[Any], **kwargs: Any) -> NDArray[Any]:
        labels = np.asarray(y).argmax(axis=1) if np.ndim(y) == 2 else np.asarray(y)
        rows = np.asarray(x, dtype=np.float32).reshape(-1, WIDTH)
        return robust_gradient(self._counting, rows, labels.astype(np.int64), self._steps)

    def get_activations(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def robust_gradient(
    model: CountingModel, x: NDArray[np.float32], labels: NDArray[np.int64], steps: Sequence[float]
) -> NDArray[np.float32]:
    """The mean over ``steps`` of the finite-difference loss gradients, each scaled to unit L1
    norm per input (an all-zero one stays zero); one step gives that step's gradient as is."""
    if len(steps) == 1:
        return loss_gradient(model, x, labels, steps[0])
    total = np.zeros_like(x, dtype=np.float32)
    for step in steps:
        gradient = loss_gradient(model, x, labels, step)
        norm = np.abs(gradient).sum(axis=1, keepdims=True)
        total += np.divide(gradient, norm, out=np.zeros_like(gradient), where=norm > 0)
    return np.asarray(total / len(steps), dtype=np.float32)


def black_box(predict: Callable[[NDArray[Any]], NDArray[np.float32]], classes: int) -> Any:
    """A label-only ART classifier whose every prediction is ``predict`` (one-hot answers)."""
    return BlackBoxClassifier(
        predict, input_shape=(WIDTH,), nb_classes=classes, clip_values=(PIXEL_MIN, PIXEL_MAX)
    )
