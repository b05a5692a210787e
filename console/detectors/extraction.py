"""A PRADA-style extraction statistic (Juuti et al. 2019) per client: the minimum distances
between a client's queries are roughly normal for natural inputs and not for synthetic probing.
O(ring) numpy work per query, batched.

State at fleet scale (issue 14). The earlier design kept ``window`` (100) float64 rows plus a
float64 batch buffer per client, ~60 KB, so it held 4,096 clients and a slow attacker among
100,000 active ones lost its state before it could alarm. Measured by
``benchmarks/bench_fleet_detection.py`` against that design in the same run, what this one does:

- **float32 rows, float64 arithmetic by direct differences.** The gateway receives FP32
  tensors, so float32 storage loses nothing; the distances are ``sqrt(sum((q - r)**2))`` in
  float64, not ``|q|^2 - 2 q.r + |r|^2`` (in float32 that cancels small distances; in float64
  it measured ~1.6x faster at 100 rows, but a repeated input need not come out exactly 0
  apart, so need not score 1). Distances equal the float64 brute force (tested).
- **A ring of the last 32 queries** for the minimum distance, still 100 distances for the
  normality test. Measured with the lab's traffic, against the 100-row ring: the lab's
  extraction walk is scored past the 0.4 alert threshold after the same number of its queries
  (37: its nearest query is the step before it), and benign clients score lower (median 0.07
  against 0.09; none above 0.4); a full client holds 0.22x the bytes.
- **Buffers that grow with what a client sent**: most fleet clients send a few queries; a
  one-query client holds 660 B, not a preallocated 13.5 KB.
- **Redis-shared state was measured and not chosen**: a GET and SET of the state per query to
  a local redis-server gives 0.02-0.04x the in-process queries/s, and the state takes as many
  bytes in redis (14.8 KB for a full client). So each replica keeps the state of the queries
  it answered (a client spread over N replicas is scored on each one's share).
- **Eviction by evidence** (the Sybil defence): clients are kept in tiers by how many queries
  were measured (1, 2-3, 4-7, ... below ``min_samples``, then established), and when the
  monitor is full the least recent client of the lowest non-empty tier goes, never the client
  being observed. A flood of one-query ids only evicts one-query ids; evicting an established
  attacker takes ~``max_clients`` ids of ``min_samples`` queries each. Established clients hold
  at most 7/8 of ``max_clients`` (the least recent goes beyond), so stale established states
  cannot keep newcomers out for good.

Memory budget (tracemalloc, digits' 64 features, defaults): < 14.5 KB per client with a full
ring (13.5 KB measured: 48 float32 rows incl. the batch buffer, 100 float64 distances), < 1 KB
for a one-query client (660 B); the earlier design took 61.7 KB for either. At most
``max_clients`` = 131,072 clients: 1.8 GB if every one is established; 154 MB measured for the
benchmark's 100,000-client fleet (1% sending 300 queries, the rest a few), 1.5 KB per client.
"""

from __future__ import annotations

from collections import ChainMap, OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float32]
_T = TypeVar("_T", bound=np.generic)

RING = 32
"""Default number of previous queries a query's minimum distance is measured against."""
ESTABLISHED_SHARE = 7 / 8
"""At most this share of ``max_clients`` may be established clients."""


@dataclass(slots=True)
class _ClientState:
    rows: NDArray[np.float32]
    """The window ``rows[:held]`` (the last ``held`` queries, oldest first), then the queries
    waiting to be measured ``rows[held : held + waiting]``. Grows with what the client sent,
    up to ``ring + score_every`` rows."""
    distances: NDArray[np.float64]
    """Ring buffer of the minimum distances of its last ``window`` queries (order does not
    matter to the statistic); grows up to ``window``."""
    held: int = 0
    waiting: int = 0
    """How many queries wait in ``rows`` after the window."""
    count: int = 0
    """Queries measured and added to the window."""
    measured: int = 0
    """Distances measured (every query but the client's first)."""
    score: float = 0.0
    tier: int = 0

    @property
    def queries(self) -> NDArray[np.float32]:
        """The window: the client's last queries measured, oldest first."""
        return self.rows[: self.held]

    @property
    def pending(self) -> NDArray[np.float32]:
        """Room for queries waiting to be measured (``waiting`` of them in use)."""
        return self.rows[self.held :]


@lru_cache(maxsize=2048)
def _not_before(new: int, held: int) -> NDArray[np.bool_]:
    """[i, j] is True unless row j of ``rows[: held + new]`` came before pending query i."""
    return np.triu(np.ones((new, held + new), dtype=bool), k=held)


def _ring_put(ring: NDArray[np.float64], start: int, values: NDArray[np.float64]) -> None:
    """Write ``values`` into ``ring`` from position ``start`` (modulo its length) on."""
    size = len(ring)
    if len(values) > size:  # only the last ``size`` survive
        start += len(values) - size
        values = values[-size:]
    first = start % size
    if first + len(values) <= size:
        ring[first : first + len(values)] = values
    else:
        ring[(first + np.arange(len(values))) % size] = values


def _grown(array: NDArray[_T], need: int, cap: int) -> NDArray[_T]:
    """``array`` (its leading rows kept) with room for ``need`` rows: doubled, at most ``cap``."""
    if need <= len(array):
        return array
    bigger = np.empty((min(max(need, 2 * len(array)), cap), *array.shape[1:]), array.dtype)
    bigger[: len(array)] = array
    return bigger


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


def min_distances(rows: NDArray[np.float32], held: int) -> NDArray[np.float64]:
    """For each of ``rows[held:]``: its minimum L2 distance to the rows before it (inf for
    ``rows[0]``), by direct float64 differences."""
    block = rows.astype(np.float64)
    diff = block[held:, None, :] - block[None, :, :]
    squared = np.einsum("ijk,ijk->ij", diff, diff)
    squared[_not_before(len(rows) - held, held)] = np.inf
    nearest: NDArray[np.float64] = np.sqrt(squared.min(axis=1))
    return nearest


class ExtractionMonitor:
    """PRADA-style statistic per client.

    For each query: its minimum L2 distance to the client's previous ``ring`` queries joins the
    client's last ``window`` minimum distances; once there are ``min_samples`` of them, the
    score is ``1 - W'`` (Shapiro-Francia, see ``shapiro_francia``) on them. Natural inputs give
    roughly normal distances (W' near 1); synthetic probing (grid walks, small perturbations of
    a few seeds) does not. Memory: at most ``ring + score_every`` float32 rows and ``window``
    distances per client, ``max_clients`` clients (evicted by evidence, see the module
    docstring).

    Queries are measured in batches of ``score_every`` (every query while a client has fewer
    than ``min_samples`` distances), and the score recomputed after each batch: it summarises
    ``window`` queries and is scraped every few seconds, so a score at most
    ``score_every - 1`` queries old changes no alert, while a batch costs about what one query
    did (numpy's fixed cost per call dominates at this size). A query is compared with the
    ring plus the queries of its batch before it.
    """

    _min_distances = staticmethod(min_distances)

    def __init__(
        self,
        window: int = 100,
        min_samples: int = 20,
        max_clients: int = 131_072,
        score_every: int = 16,
        *,
        ring: int = RING,
    ) -> None:
        self.window = window
        self.min_samples = min_samples
        self.max_clients = max_clients
        if not 1 <= score_every <= window:
            raise ValueError("score_every must be between 1 and window")
        if ring < 1 or max_clients < 1:
            raise ValueError("ring and max_clients must be at least 1")
        self.score_every = score_every
        self.ring = min(ring, window)
        self._established_cap = max(1, int(max_clients * ESTABLISHED_SHARE))
        # Tier t < top holds clients with 2**(t-1) <= count < 2**t (t = count.bit_length()).
        self._top = (min_samples - 1).bit_length() + 1 if min_samples > 1 else 1
        self._tiers: list[OrderedDict[str, _ClientState]] = [
            OrderedDict() for _ in range(self._top + 1)
        ]
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def _clients(self) -> ChainMap[str, _ClientState]:
        """Every client's state, by client (a read-only view for tests and debugging)."""
        return ChainMap(*self._tiers)

    def _tier(self, count: int) -> int:
        return self._top if count >= self.min_samples else min(count.bit_length(), self._top - 1)

    def _find(self, client: str) -> _ClientState | None:
        for tier in reversed(self._tiers):  # established clients (the most queries) first
            state = tier.get(client)
            if state is not None:
                return state
        return None

    def _evict(self) -> None:
        """Drop the least recent client of the lowest non-empty tier."""
        for tier in self._tiers:
            if tier:
                tier.popitem(last=False)
                self._size -= 1
                return

    def _new_state(self, width: int) -> _ClientState:
        """An empty state: its buffers grow as the client sends."""
        return _ClientState(np.empty((0, width), np.float32), np.empty(0, np.float64))

    def observe(self, client: str, rows: Array) -> float:
        """Add the rows of one request; return the client's score after the last flush."""
        state = self._find(client)
        if state is None:
            if self._size >= self.max_clients:
                self._evict()  # before the insert: a newcomer never evicts itself
            state = self._new_state(rows.shape[1])
            self._tiers[0][client] = state
            self._size += 1
        else:
            self._tiers[state.tier].move_to_end(client)
            if (  # the common case, kept short: one row that does not complete a batch
                rows.shape[0] == 1
                and state.waiting < self.score_every - 1
                and state.count > self.min_samples
                and state.held + state.waiting < len(state.rows)
            ):
                state.rows[state.held + state.waiting] = rows[0]
                state.waiting += 1
                return state.score
        taken = 0
        cap = self.ring + self.score_every
        while taken < rows.shape[0]:
            room = min(self.score_every - state.waiting, rows.shape[0] - taken)
            end = state.held + state.waiting + room
            state.rows = _grown(state.rows, end, cap)
            state.rows[end - room : end] = rows[taken : taken + room]
            state.waiting += room
            taken += room
            # While warming up (too few distances for a score) every request is measured, so a
            # client is scored as soon as it has min_samples distances.
            if state.waiting == self.score_every or state.count < self.min_samples + 1:
                self._flush(state)
        if rows.shape[0] > 1 and state.waiting:
            self._flush(state)  # a request of many rows is scored on all of them
        tier = self._tier(state.count)
        if tier != state.tier:
            del self._tiers[state.tier][client]
            self._tiers[tier][client] = state
            state.tier = tier
            if tier == self._top and len(self._tiers[tier]) > self._established_cap:
                self._tiers[tier].popitem(last=False)
                self._size -= 1
        return state.score

    def _flush(self, state: _ClientState) -> None:
        """Measure the waiting queries' minimum distances (to the window and to the waiting
        queries before them) in a few array operations, add them, re-score."""
        end = state.held + state.waiting
        found = self._min_distances(state.rows[:end], state.held)
        if state.count == 0:  # the client's very first query has nothing to be near
            found = found[1:]
        if len(found):
            need = min(state.measured + len(found), self.window)
            state.distances = _grown(state.distances, need, self.window)
            _ring_put(state.distances, state.measured, found)
            state.measured += len(found)
        state.count += state.waiting
        keep = min(end, self.ring)
        if end > keep:  # slide the window: the oldest rows go
            state.rows[:keep] = state.rows[end - keep : end]
        state.held = keep
        state.waiting = 0
        if state.measured >= self.min_samples:
            state.score = self._score(state.distances[: min(state.measured, self.window)])

    def score(self, client: str) -> float:
        state = self._find(client)
        return 0.0 if state is None else state.score

    def _score(self, distances: NDArray[np.float64]) -> float:
        if distances.max() == distances.min():
            return 1.0  # identical distances: as far from natural traffic as it gets
        return min(max(1.0 - shapiro_francia(distances), 0.0), 1.0)
