"""The model under test: an onnxruntime session of a verified artifact, every call counted
(rows and ``session.run`` calls), in batches of at most ``batch_rows`` rows.

Counting is how the report says what an attack cost: the queries a black-box attack sent, the
rows gradient estimation ran. Nothing here imports ART (``art_classifier`` does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from console.model_artifacts import INPUT_NAME, OUTPUTS

Rows = NDArray[np.float32]
BATCH_ROWS = 8192
"""Rows per ``session.run``: finite-difference gradients of 64 inputs are 8,192 rows."""


@dataclass
class CallLog:
    rows: int = 0
    calls: int = 0
    seconds: float = 0.0
    """Inside ``session.run``."""
    batches: list[int] | None = None
    """Rows of each call, when asked for (the benchmark replays them through onnxruntime)."""

    def add(self, rows: int, seconds: float) -> None:
        self.rows += rows
        self.calls += 1
        self.seconds += seconds
        if self.batches is not None:
            self.batches.append(rows)


@dataclass
class CountingModel:
    session: Any
    batch_rows: int = BATCH_ROWS
    log: CallLog = field(default_factory=CallLog)
    nb_classes: int = 0

    def __post_init__(self) -> None:
        if not self.nb_classes:
            self.nb_classes = int(self.probabilities(np.zeros((1, 64), np.float32)).shape[1])
            self.log = CallLog(batches=self.log.batches)  # the probe is not an attack's

    def probabilities(self, x: NDArray[Any]) -> NDArray[np.float32]:
        rows = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 64)
        parts = []
        for start in range(0, max(len(rows), 1), self.batch_rows):
            chunk = rows[start : start + self.batch_rows]
            began = time.perf_counter()
            _, probabilities = self.session.run(list(OUTPUTS), {INPUT_NAME: chunk})
            self.log.add(len(chunk), time.perf_counter() - began)
            parts.append(np.asarray(probabilities, dtype=np.float32))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def labels(self, x: NDArray[Any]) -> NDArray[np.int64]:
        return np.asarray(self.probabilities(x).argmax(axis=1), dtype=np.int64)


def cross_entropy(probabilities: NDArray[Any], labels: NDArray[np.int64]) -> NDArray[np.float64]:
    """``-log p_y``, computed as ``log1p(sum of the other classes / p_y)``: the other classes'
    small probabilities keep their float32 precision where ``p_y`` rounds to 1."""
    p = np.asarray(probabilities, dtype=np.float64)
    index = labels[..., None]
    chosen = np.take_along_axis(p, index, axis=-1)[..., 0]
    others = p.copy()
    np.put_along_axis(others, index, 0.0, axis=-1)
    ratio = others.sum(axis=-1) / np.maximum(chosen, 1e-30)
    return np.asarray(np.log1p(ratio), dtype=np.float64)


def loss_gradient(
    model: CountingModel, x: Rows, labels: NDArray[np.int64], step: float
) -> NDArray[np.float32]:
    """The gradient of the cross-entropy at ``x`` [N, 64] by central differences of
    ``step`` pixels: 128 model rows per input, in as few calls as ``batch_rows`` allows."""
    n, width = x.shape
    eye = np.eye(width, dtype=np.float32) * np.float32(step)
    shifted = np.concatenate([x[:, None, :] + eye, x[:, None, :] - eye], axis=1)  # [N, 2W, W]
    p = model.probabilities(shifted.reshape(-1, width)).reshape(n, 2 * width, -1)
    repeated = np.repeat(labels[:, None], 2 * width, axis=1)
    loss = cross_entropy(p, repeated)
    gradient = (loss[:, :width] - loss[:, width:]) / (2.0 * step)
    return np.asarray(gradient, dtype=np.float32)
