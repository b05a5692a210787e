"""The model under test as ART estimators: ``GradientClassifier`` (white box for FGSM and PGD,
its loss gradients by central finite differences of the ONNX model's own probabilities: the
artifact is an opaque graph, and this needs nothing but its answers), and ``black_box`` (the
label-only view HopSkipJump and KnockoffNets query).

ART (~2 s) is imported with this module: only ``attacks`` imports it, inside the attack.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
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
"""Finite-difference step, pixels (of 0..16): small against FGSM's 1..4, large enough that the
float32 probabilities still differ."""


class GradientClassifier(LossGradientsMixin, ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """An ART classifier with loss gradients over a ``CountingModel``."""

    estimator_params = BaseEstimator.estimator_params + ClassifierMixin.estimator_params

    def __init__(self, model: CountingModel, step: float = FD_STEP) -> None:
        super().__init__(model=model, clip_values=(PIXEL_MIN, PIXEL_MAX))
        self._counting = model
        self._step = step
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
        return loss_gradient(self._counting, rows, labels.astype(np.int64), self._step)

    def get_activations(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def black_box(predict: Callable[[NDArray[Any]], NDArray[np.float32]], classes: int) -> Any:
    """A label-only ART classifier whose every prediction is ``predict`` (one-hot answers)."""
    return BlackBoxClassifier(
        predict, input_shape=(WIDTH,), nb_classes=classes, clip_values=(PIXEL_MIN, PIXEL_MAX)
    )
