"""Per-request detectors: feature squeezing (Xu et al. 2018) and a PRADA-style extraction
statistic (Juuti et al. 2019). Both cost O(rows) / O(window) numpy work per request."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist

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

    def squeeze(x: Array) -> Array:
        squeezed = np.round(x * (levels / PIXEL_MAX)) * (PIXEL_MAX / levels)
        return np.asarray(squeezed, dtype=np.float32)

    return squeeze


def median_smoothing(size: int) -> Squeezer:
    """Median filter of ``size`` x ``size`` over each 8x8 image (reflecting the border).

    A precomputed gather + sort: ``np.median`` over sliding windows costs ~20x more at this size.
    """
    before, after = (size - 1) // 2, size // 2
    # The padding is folded into the gather: each output pixel's window, as indices of the
    # unpadded image (np.pad per call would cost more than the filter).
    pixels = np.arange(SIDE * SIDE).reshape(SIDE, SIDE)
    padded = np.pad(pixels, ((before, after), (before, after)), mode="reflect")
    index = sliding_window_view(padded, (size, size)).reshape(SIDE * SIDE, size * size)
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
        parts = probabilities.reshape(len(self.squeezers) + 1, rows, -1)
        distances = np.abs(parts[1:] - parts[0]).sum(axis=2)
        return np.asarray(np.clip(distances.max(axis=0) / 2.0, 0.0, 1.0), dtype=np.float32)


@dataclass
class _ClientWindow:
    queries: Array
    """Ring buffer of the client's last ``window`` inputs."""
    count: int = 0
    distances: list[float] = field(default_factory=list)
    score: float = 0.0


@lru_cache(maxsize=512)
def _normal_scores(n: int) -> NDArray[np.float64]:
    """Blom's approximation of the expected standard normal order statistics, unit length."""
    inv = NormalDist().inv_cdf
    m = np.array([inv((i - 0.375) / (n + 0.25)) for i in range(1, n + 1)])
    scores: NDArray[np.float64] = m / np.sqrt(np.dot(m, m))
    return scores


def shapiro_francia(values: NDArray[np.float64]) -> float:
    """Shapiro-Francia W' (a close, cheap equivalent of Shapiro-Wilk's W): the squared
    correlation of the sorted sample with the expected normal order statistics. ~15 us at
    n = 100, against ~400 us for ``scipy.stats.shapiro``."""
    ordered = np.sort(values)
    centred = ordered - ordered.mean()
    denominator = float(np.dot(centred, centred))
    if denominator == 0.0:
        return 0.0
    return float(np.dot(_normal_scores(len(ordered)), centred) ** 2 / denominator)


class ExtractionMonitor:
    """PRADA-style statistic per client.

    For each query: its minimum L2 distance to the client's previous ``window`` queries joins the
    client's last ``window`` minimum distances; once there are ``min_samples`` of them, the
    score is ``1 - W'`` (Shapiro-Francia, see ``shapiro_francia``) on them. Natural inputs give
    roughly normal distances (W' near 1); synthetic probing (grid walks, small perturbations of
    a few seeds) does not. Memory: ``window`` rows per client, ``max_clients`` clients (the
    least recent dropped).
    """

    def __init__(self, window: int = 100, min_samples: int = 20, max_clients: int = 4096) -> None:
        self.window = window
        self.min_samples = min_samples
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _ClientWindow] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def observe(self, client: str, rows: Array) -> float:
        """Add the rows of one request; return the client's score after them."""
        state = self._clients.get(client)
        if state is None:
            state = _ClientWindow(np.empty((self.window, rows.shape[1]), dtype=np.float32))
            self._clients[client] = state
            if len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        for row in rows:
            held = min(state.count, self.window)
            if held:
                diff = state.queries[:held] - row
                state.distances.append(float(np.sqrt(np.min(np.einsum("ij,ij->i", diff, diff)))))
                if len(state.distances) > self.window:
                    del state.distances[0]
            state.queries[state.count % self.window] = row
            state.count += 1
        state.score = self._score(state.distances)
        return state.score

    def score(self, client: str) -> float:
        state = self._clients.get(client)
        return 0.0 if state is None else state.score

    def _score(self, distances: list[float]) -> float:
        if len(distances) < self.min_samples:
            return 0.0
        values = np.asarray(distances)
        if float(np.ptp(values)) == 0.0:
            return 1.0  # identical distances: as far from natural traffic as it gets
        return float(np.clip(1.0 - shapiro_francia(values), 0.0, 1.0))
