"""Feature squeezing (Xu et al. 2018): how far a model's answer moves when its input is
squeezed (fewer bits, a median filter). The numpy reference; the lab gateway computes the same
score inside the served ONNX graph (``console/lab/gateway/guard_graph.py``), replay with this."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

Array = NDArray[np.float32]
PIXEL_MAX = 16.0
SIDE = 8
Squeezer = Callable[[Array], Array]


def bit_depth(bits: int) -> Squeezer:
    """Quantise the 0..16 pixel values to ``2**bits`` levels."""
    levels = float(2**bits - 1)
    scale, step = np.float32(levels / PIXEL_MAX), np.float32(PIXEL_MAX / levels)

    def squeeze(x: Array) -> Array:
        # In place on one new array: on a 64-pixel row, numpy's per-call cost is the cost.
        squeezed = np.multiply(x, scale, dtype=np.float32)
        np.rint(squeezed, out=squeezed)
        squeezed *= step
        return squeezed

    return squeeze


def median_window_index(size: int) -> NDArray[np.intp]:
    """For each pixel of an 8x8 image, the indices (into the flat image) of its ``size`` x
    ``size`` window, the border reflected: shape [64, size * size]. The padding is folded into
    the gather (np.pad per call would cost more than the filter)."""
    before, after = (size - 1) // 2, size // 2
    pixels = np.arange(SIDE * SIDE).reshape(SIDE, SIDE)
    padded = np.pad(pixels, ((before, after), (before, after)), mode="reflect")
    return np.asarray(sliding_window_view(padded, (size, size)).reshape(SIDE * SIDE, size * size))


def median_smoothing(size: int) -> Squeezer:
    """Median filter of ``size`` x ``size`` over each 8x8 image (reflecting the border).

    A precomputed gather + sort: ``np.median`` over sliding windows costs ~20x more at this size.
    """
    index = median_window_index(size)
    mid = size * size // 2
    even = size * size % 2 == 0

    def squeeze(x: Array) -> Array:
        values = np.sort(x.reshape(-1, SIDE * SIDE)[:, index], axis=-1)
        median = (values[..., mid - 1] + values[..., mid]) / 2 if even else values[..., mid]
        return np.asarray(median, dtype=np.float32)

    return squeeze


SQUEEZERS: dict[str, Squeezer] = {
    # 2 bits: 1 bit already moves a tenth of clean digits by > 0.5 (docs/architecture.md).
    "bits2": bit_depth(2),
    "median2": median_smoothing(2),
    "median3": median_smoothing(3),
}
DEFAULT_SQUEEZERS: tuple[tuple[str, Squeezer], ...] = (("bits2", SQUEEZERS["bits2"]),)


@lru_cache(maxsize=8)
def _ones(width: int) -> Array:
    ones = np.ones(width, dtype=np.float32)
    ones.flags.writeable = False
    return ones


@dataclass(frozen=True)
class FeatureSqueezer:
    """Score = max over squeezers of the L1 distance between the probability vectors of the
    input and of its squeezed version, halved into [0, 1]."""

    squeezers: Sequence[tuple[str, Squeezer]] = DEFAULT_SQUEEZERS

    def batch(self, x: Array) -> Array:
        """The input rows followed by each squeezer's rows: one model call for everything."""
        return np.concatenate([x, *(squeeze(x) for _, squeeze in self.squeezers)], axis=0)

    def scores(self, probabilities: Array, rows: int) -> Array:
        """Per-row scores from the model's probabilities on ``batch(x)``."""
        probabilities = probabilities.astype(np.float32, copy=False)
        # Row sums as a product with ones: numpy's sum over 10 columns is ~9x slower on the
        # 10,000 rows of a replay, and no slower on one row.
        ones = _ones(int(probabilities.shape[1]))
        if len(self.squeezers) == 1:
            difference = probabilities[rows:] - probabilities[:rows]
            distances = np.abs(difference, out=difference) @ ones
        else:
            parts = probabilities.reshape(len(self.squeezers) + 1, rows, -1)
            distances = (np.abs(parts[1:] - parts[0]) @ ones).max(axis=0)
        # The L1 distance of two probability vectors is at most 2. minimum, not clip: np.clip
        # costs more than the rest of this method on a few rows.
        distances *= 0.5
        np.minimum(distances, 1.0, out=distances)
        return np.asarray(distances, dtype=np.float32)
