"""The seed's two digits classifiers, trained with scikit-learn and exported to ONNX.

ONNX contract: input ``input`` float32 ``[N, 64]`` (raw 8x8 digits pixels, 0..16); outputs
``label`` int64 ``[N]`` and ``probabilities`` float32 ``[N, 10]``.

scikit-learn, skl2onnx and onnxruntime are imported only when a model is trained or exported.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from console.errors import LabError

KINDS = ("logreg", "mlp")
"""Seed version 1 is the logistic regression, version 2 the MLP."""


@dataclass(frozen=True)
class TrainedModel:
    kind: str
    """One of ``KINDS``, or an attack's own label (``poisoned-logreg``)."""
    onnx: bytes
    accuracy: float
    """Held-out accuracy of the ONNX model itself on digits."""


@functools.cache
def train_seed_models() -> tuple[TrainedModel, ...]:
    """Fit both seed models on digits and export them to ONNX (once per process)."""
    try:
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:
        raise _not_installed(exc) from None
    x, y = load_digits(return_X_y=True)
    # attacks.common.digits_split repeats this split (its train part is the attacker's pool).
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y, test_size=0.25, random_state=0, stratify=y
    )
    models = {
        # Scaled: on raw pixels lbfgs needs ~15x longer and ends less accurate.
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "mlp": MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=0),
    }
    trained = []
    for kind in KINDS:
        onnx = export_onnx(models[kind].fit(x_train, y_train))
        accuracy = round(_onnx_accuracy(onnx, x_test, y_test), 4)
        trained.append(TrainedModel(kind, onnx, accuracy))
    return tuple(trained)


def export_onnx(model: Any) -> bytes:
    """A fitted scikit-learn classifier (or pipeline) as ONNX bytes of the digits contract."""
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as exc:
        raise _not_installed(exc) from None
    classifier = model.steps[-1][1] if hasattr(model, "steps") else model
    # zipmap off: probabilities as a plain [N, 10] tensor, which onnxruntime and V2 servers expect.
    onnx_model = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, 64]))],
        options={id(classifier): {"zipmap": False}},
    )
    return bytes(onnx_model.SerializeToString())


def _onnx_accuracy(onnx: bytes, x_test: Any, y_test: Any) -> float:
    """Accuracy of the exported artifact itself, so the tag describes what is served."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise _not_installed(exc) from None
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    labels = session.run(["label"], {"input": x_test})[0]
    return float((labels == y_test).mean())


def _not_installed(exc: ImportError) -> LabError:
    return LabError(f"{exc.name} not installed: pip install -e '.[lab]'")


__all__ = ["KINDS", "TrainedModel", "export_onnx", "train_seed_models"]
