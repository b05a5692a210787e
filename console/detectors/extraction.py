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
  one-query client holds 668 B, not a preallocated 13.5 KB.
- **Redis-shared state was measured and not chosen**: a GET and SET of the state per query to
  a local redis-server gives 0.02-0.04x the in-process queries/s, and the state takes as many
  bytes in redis (14.8 KB for a full client). So each replica keeps the state of the queries
  it answered (a client spread over N replicas is scored on each one's share).
- **Evidence by requests** (attacker review F1). One request may carry up to 1024 rows, so
  rows measure nothing the sender paid for: 21 identical rows in one request gave a fresh id
  20 distances, all 0, hence the top score and the established tier at once. So at most
  ``rows_per_request`` (4) successive rows of a request are measured (a run from a random
  offset: PRADA's distances are between successive queries, and the sender cannot tell which
  run), and a client is scored, and established, only once it has ``min_samples`` distances
  from at least ``min_requests`` (10) requests. A client sending one row per request needs 21
  requests for 20 distances anyway, so ``min_requests`` <= 21 changes nothing for it: the lab's
  walk at one query per request is still scored past 0.4 at its 37th query, alone and among
  100,000 clients. Sent in requests of 4, 10 or 30 rows (``lab attack extraction --batch``),
  it is scored past 0.4 at the 10th request (counting rows: the 8th, 4th, 2nd); 4 rows picked
  at random instead of a run missed 4 of 5 walks sent 30 rows a request. A 1024-row request costs
  0.02 ms, not 4-5 ms. Benign clients sending 4 rows a request score at most 0.15 (0.20
  counting rows); one query per request, as before.
- **Eviction by evidence** (the Sybil defence): clients are kept in tiers by how many requests
  they sent (1, 2-3, 4-7, ... while not scorable, then established), and when the monitor is
  full the least recent client of the lowest non-empty tier goes, never the client being
  observed. Established clients hold at most 7/8 of ``max_clients`` (the least recent goes
  beyond), so stale established states cannot keep newcomers out for good; that is also the
  only way an established client is evicted. Throwaway ids that are not established only
  evict each other, whatever their requests carry. Measured (the benchmark's ``requests``
  part, the default ``max_clients``): evicting an established attacker took 114,688 newcomer
  ids (7/8 of 131,072, less the other established clients) established by 10 requests each,
  1,146,880 requests; counting rows it took 114,688 requests of 21 rows.

Memory budget, **per served model and per gateway replica**: the gateway keeps one monitor per
served model (``console.lab.gateway.service``), in each replica's process, so a client that
queries M models holds M states, and each replica holds the clients it answered. Per monitor
(tracemalloc, digits' 64 features, defaults): < 14.5 KB per client with a full ring (13.5 KB
measured: 48 float32 rows incl. the batch buffer, 100 float64 distances), < 1 KB for a
one-query client (668 B); the earlier design took 61.7 KB for either. At most ``max_clients``
= 131,072 clients: 1.8 GB per model and replica if every one is established; 155 MB measured
for the benchmark's 100,000-client fleet (1% sending 300 queries, the rest a few), 1.55 KB
per client.
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
ROWS_PER_REQUEST = 4
"""Default number of a request's rows measured (a run of them when it has more)."""
MIN_REQUESTS = 10
"""Default number of requests a client must have sent before it is scored or established."""
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
    """Queries (rows) measured and added to the window."""
    requests: int = 0
    """Requests observed (calls to ``observe``): the evidence tiers and scoring go by."""
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

    For each query (at most ``rows_per_request`` rows of a request): its minimum L2 distance to
    the client's previous ``ring`` queries joins the client's last ``window`` minimum distances;
    once there are ``min_samples`` of them and the client sent ``min_requests`` requests, the
    score is ``1 - W'`` (Shapiro-Francia, see ``shapiro_francia``) on them. Natural inputs give
    roughly normal distances (W' near 1); synthetic probing (grid walks, small perturbations of
    a few seeds) does not. Memory: at most ``ring + score_every`` float32 rows and ``window``
    distances per client, ``max_clients`` clients (evicted by evidence, see the module
    docstring).

    Queries are measured in batches of ``score_every`` (every request while a client is not
    scorable), and the score recomputed after each batch: it summarises
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
        rows_per_request: int = ROWS_PER_REQUEST,
        min_requests: int = MIN_REQUESTS,
        seed: int | None = None,
    ) -> None:
        self.window = window
        self.min_samples = min_samples
        self.max_clients = max_clients
        if not 1 <= score_every <= window:
            raise ValueError("score_every must be between 1 and window")
        if min(ring, max_clients, rows_per_request, min_requests) < 1:
            raise ValueError("ring, max_clients, rows_per_request, min_requests: at least 1")
        self.score_every = score_every
        self.rows_per_request = rows_per_request
        self.min_requests = min_requests
        self._rng = np.random.default_rng(seed)
        self.ring = min(ring, window)
        self._established_cap = max(1, int(max_clients * ESTABLISHED_SHARE))
        # Tier t < top holds clients with 2**(t-1) <= requests < 2**t (t = its bit_length())
        # not yet scorable; the most requests a client can send unscored is the larger of
        # min_samples (one row each: min_samples + 1 rows for min_samples distances) and
        # min_requests - 1.
        self._top = max(min_samples, min_requests - 1).bit_length() + 1
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

    def _scorable(self, state: _ClientState) -> bool:
        """Enough distances for the test, from enough requests for them to be evidence."""
        return state.measured >= self.min_samples and state.requests >= self.min_requests

    def _tier(self, state: _ClientState) -> int:
        if self._scorable(state):
            return self._top
        return min(state.requests.bit_length(), self._top - 1)

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

    def _measured_rows(self, rows: Array) -> Array:
        """At most ``rows_per_request`` successive rows of a request, from a random offset when
        it has more: PRADA's distances are between successive queries (``rows_per_request``
        rows picked apart would not keep a walk's steps), and the sender cannot tell which
        run is measured."""
        extra = rows.shape[0] - self.rows_per_request
        if extra <= 0:
            return rows
        start = int(self._rng.integers(extra + 1))
        return rows[start : start + self.rows_per_request]

    def observe(self, client: str, rows: Array) -> float:
        """Add one request (its rows, at most ``rows_per_request`` of them measured); return
        the client's score after the last flush."""
        rows = self._measured_rows(rows)
        state = self._find(client)
        if state is None:
            if self._size >= self.max_clients:
                self._evict()  # before the insert: a newcomer never evicts itself
            state = self._new_state(rows.shape[1])
            self._tiers[0][client] = state
            self._size += 1
        else:
            self._tiers[state.tier].move_to_end(client)
        state.requests += 1
        if (  # the common case, kept short: one row that does not complete a batch
            state.tier == self._top
            and rows.shape[0] == 1
            and state.waiting < self.score_every - 1
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
            # Until it is scorable every request is measured, so a client is scored as soon as
            # it has min_samples distances from min_requests requests.
            if state.waiting == self.score_every or state.tier != self._top:
                self._flush(state)
        if rows.shape[0] > 1 and state.waiting:
            self._flush(state)  # a request of many rows is scored on all of them
        tier = self._tier(state)
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
        if self._scorable(state):
            state.score = self._score(state.distances[: min(state.measured, self.window)])

    def score(self, client: str) -> float:
        state = self._find(client)
        return 0.0 if state is None else state.score

    def _score(self, distances: NDArray[np.float64]) -> float:
        if distances.max() == distances.min():
            return 1.0  # identical distances: as far from natural traffic as it gets
        return min(max(1.0 - shapiro_francia(distances), 0.0), 1.0)
