"""A PRADA-style extraction statistic (Juuti et al. 2019) per client: the minimum distances
between a client's queries are roughly normal for natural inputs and not for synthetic probing.
O(window) numpy work per query, batched."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float32]


@dataclass
class _ClientWindow:
    queries: NDArray[np.float64]
    """Ring buffer of the client's last ``window`` inputs times -2 (float64: the distances
    come from norms and dot products, where float32 would cancel away small distances)."""
    norms: NDArray[np.float64]
    """Their squared L2 norms."""
    distances: NDArray[np.float64]
    """Ring buffer of the minimum distances of its last ``window`` queries (order does not
    matter to the statistic)."""
    pending: NDArray[np.float64]
    """Queries received but not yet measured (up to ``score_every``)."""
    waiting: int = 0
    """How many rows of ``pending`` are in use."""
    count: int = 0
    """Queries measured and added to the window."""
    measured: int = 0
    """Distances measured (every query but the client's first)."""
    score: float = 0.0


@lru_cache(maxsize=64)
def _not_before(n: int) -> NDArray[np.bool_]:
    """[i, j] is True unless query j came before query i (the diagonal included)."""
    return np.triu(np.ones((n, n), dtype=bool))


def _ring_put(ring: NDArray[np.float64], start: int, values: NDArray[np.float64]) -> None:
    """Write ``values`` into ``ring`` from position ``start`` (modulo its length) on."""
    size = len(ring)
    first = start % size
    if first + len(values) <= size:
        ring[first : first + len(values)] = values
    else:
        ring[(first + np.arange(len(values))) % size] = values


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

    Queries are measured in batches of ``score_every`` (every query while a client has fewer
    than ``min_samples`` distances), and the score recomputed after each batch: it summarises
    ``window`` queries and is scraped every few seconds, so a score at most
    ``score_every - 1`` queries old changes no alert, while a batch costs about what one query
    did (numpy's fixed cost per call dominates at this size). A query is compared with the
    window plus the queries of its batch before it.
    """

    def __init__(
        self,
        window: int = 100,
        min_samples: int = 20,
        max_clients: int = 4096,
        score_every: int = 16,
    ) -> None:
        self.window = window
        self.min_samples = min_samples
        self.max_clients = max_clients
        if not 1 <= score_every <= window:
            raise ValueError("score_every must be between 1 and window")
        self.score_every = score_every
        self._clients: OrderedDict[str, _ClientWindow] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def observe(self, client: str, rows: Array) -> float:
        """Add the rows of one request; return the client's score after the last flush."""
        state = self._clients.get(client)
        if state is None:
            width = rows.shape[1]
            state = _ClientWindow(
                np.empty((self.window, width), dtype=np.float64),
                np.empty(self.window, dtype=np.float64),
                np.empty(self.window, dtype=np.float64),
                np.empty((self.score_every, width), dtype=np.float64),
            )
            self._clients[client] = state
            if len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
            if (  # the common case, kept short: one row that does not complete a batch
                rows.shape[0] == 1
                and state.waiting < self.score_every - 1
                and state.count > self.min_samples
            ):
                state.pending[state.waiting] = rows[0]
                state.waiting += 1
                return state.score
        taken = 0
        while taken < rows.shape[0]:
            room = min(self.score_every - state.waiting, rows.shape[0] - taken)
            state.pending[state.waiting : state.waiting + room] = rows[taken : taken + room]
            state.waiting += room
            taken += room
            # While warming up (too few distances for a score) every request is measured, so a
            # client is scored as soon as it has min_samples distances.
            if state.waiting == self.score_every or state.count < self.min_samples + 1:
                self._flush(state)
        if rows.shape[0] > 1 and state.waiting:
            self._flush(state)  # a request of many rows is scored on all of them
        return state.score

    def _flush(self, state: _ClientWindow) -> None:
        """Measure the pending queries' minimum distances (to the window and to the pending
        queries before them) in a few matrix operations, add them, re-score."""
        new = state.pending[: state.waiting]
        new_norms = np.einsum("ij,ij->i", new, new)
        held = min(state.count, self.window)
        # |q - r|^2 = |q|^2 - 2 q.r + |r|^2, against the window (stored as -2q) ...
        nearest = np.full(len(new), np.inf)
        if held:
            to_window = new @ state.queries[:held].T
            to_window += state.norms[:held]
            nearest = to_window.min(axis=1)
        # ... and against the pending queries sent before each one.
        if len(new) > 1:
            among = new_norms[None, :] - 2.0 * (new @ new.T)
            among[_not_before(len(new))] = np.inf
            nearest = np.minimum(nearest, among.min(axis=1))
        nearest += new_norms
        if state.count == 0:  # the client's very first query has nothing to be near
            nearest = nearest[1:]
        found = np.sqrt(np.maximum(nearest, 0.0))
        _ring_put(state.distances, state.measured, found)
        state.measured += len(found)
        _ring_put(state.queries, state.count, -2.0 * new)
        _ring_put(state.norms, state.count, new_norms)
        state.count += len(new)
        state.waiting = 0
        if state.measured >= self.min_samples:
            state.score = self._score(state.distances[: min(state.measured, self.window)])

    def score(self, client: str) -> float:
        state = self._clients.get(client)
        return 0.0 if state is None else state.score

    def _score(self, distances: NDArray[np.float64]) -> float:
        if distances.max() == distances.min():
            return 1.0  # identical distances: as far from natural traffic as it gets
        return min(max(1.0 - shapiro_francia(distances), 0.0), 1.0)
