"""The extraction statistic at fleet scale (issue 14): 100,000 active clients held within the
stated memory budget, a slow extraction walk among them still detected, and a Sybil flood of
throwaway ids unable to evict an attacker's evidence. Traffic is the lab's own: benign clients
as ``console.lab.traffic`` sends them, the attacker as ``console.lab.attacks.extraction``
walks."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from extraction_support import THRESHOLD
from extraction_support import benign as _benign
from extraction_support import served as served  # noqa: F401 - the fixture
from extraction_support import walk as _walk

from console.detectors.extraction import ExtractionMonitor

FLEET_CLIENTS = 100_000
FLEET_RATE = 10_000.0
"""Fleet queries per second (100,000 clients at 0.1/s each); the attacker sends 1 per second,
so one attacker query in every 10,000 fleet queries: ~9,000 distinct clients between two of
them, which is what dropped it from the earlier LRU of 4,096 clients."""
ONE_QUERY_BUDGET = 1_000
FULL_BUDGET = 14_500
"""Bytes per client (tracemalloc), the budget in console/detectors/extraction.py's docstring."""


def _queries_to_detection(monitor: ExtractionMonitor, client: str, walk: Iterator[Any]) -> int:
    for sent in range(1, 301):
        if monitor.observe(client, next(walk)[None, :]) > THRESHOLD:
            return sent
    raise AssertionError(f"{client} not detected in 300 queries")


def test_fleet_of_100k_clients_keeps_a_slow_attacker_detected(served: Any) -> None:
    """100,000 clients (1% send 300 queries, the rest a geometric number, mean 3) at 10,000
    queries/s, with the walk at 1 query/s from a twentieth of the way in: every client is held,
    the attacker is detected after as many of its queries as when alone, and no benign client
    with a score ever passes the threshold."""
    rng = np.random.default_rng(21)
    counts = rng.geometric(1 / 3, FLEET_CLIENTS)
    heavy = FLEET_CLIENTS // 100
    counts[:heavy] = 300
    order = np.repeat(np.arange(FLEET_CLIENTS), counts)
    rng.shuffle(order)
    rows = _benign(rng, len(order))
    names = [f"client-{c:06d}" for c in range(FLEET_CLIENTS)]
    every, start = int(FLEET_RATE), len(order) // 20
    alone = _queries_to_detection(ExtractionMonitor(), "mallory", _walk(3, served))

    monitor = ExtractionMonitor()
    walk = _walk(3, served)
    worst = np.zeros(heavy)
    sent, detected = 0, None
    for i, (c, row) in enumerate(zip(order.tolist(), rows, strict=True)):
        if i >= start and (i - start) % every == 0:
            sent += 1
            if monitor.observe("mallory", next(walk)[None, :]) > THRESHOLD and detected is None:
                detected = sent
        score = monitor.observe(names[c], row[None, :])
        if c < heavy and score > worst[c]:
            worst[c] = score
    assert len(monitor) == FLEET_CLIENTS + 1  # nobody evicted
    assert sent > alone and detected == alone <= 40
    assert monitor.score("mallory") > THRESHOLD
    assert (worst > THRESHOLD).mean() <= 0.01
    assert 0.0 < np.median([monitor.score(n) for n in names[:heavy]]) < 0.2


def test_sybil_flood_cannot_evict_an_established_attacker(served: Any) -> None:
    """An attacker sends 30 queries, then 300,000 one-query ids arrive (more than the default
    capacity): its state survives and it is detected at the same query as undisturbed."""
    alone = _queries_to_detection(ExtractionMonitor(), "mallory", _walk(11, served))
    monitor = ExtractionMonitor()
    walk = _walk(11, served)
    for _ in range(30):
        monitor.observe("mallory", next(walk)[None, :])
    kept = monitor._clients["mallory"]
    flood = _benign(np.random.default_rng(5), 1)
    for i in range(300_000):
        monitor.observe(f"sybil-{i}", flood)
    assert len(monitor) == monitor.max_clients >= FLEET_CLIENTS
    assert monitor._clients["mallory"] is kept and kept.count + kept.waiting == 30
    assert 30 + _queries_to_detection(monitor, "mallory", walk) == alone


def _feed(monitor: ExtractionMonitor, client: str, n: int, seed: int = 0) -> None:
    for row in _benign(np.random.default_rng(seed), n):
        monitor.observe(client, row[None, :])


def test_eviction_takes_the_least_evidence_first() -> None:
    monitor = ExtractionMonitor(max_clients=8)  # at most 7 established
    for c in range(6):
        _feed(monitor, f"established-{c}", 25, seed=c)
    _feed(monitor, "few", 5)
    _feed(monitor, "one", 1)
    _feed(monitor, "newcomer", 1)  # full: the least recent one-query client goes, not itself
    assert "one" not in monitor._clients and "newcomer" in monitor._clients
    _feed(monitor, "next", 1)
    assert "newcomer" not in monitor._clients and "few" in monitor._clients
    _feed(monitor, "established-6", 25)  # takes the place of "next", then 7 established
    assert "next" not in monitor._clients and len(monitor) == 8
    _feed(monitor, "established-7", 25)  # takes the place of "few"; an 8th established is
    assert "few" not in monitor._clients  # over the cap: the least recent established goes
    assert len(monitor) == 7 and "established-0" not in monitor._clients
    assert all(f"established-{c}" in monitor._clients for c in range(1, 8))


def test_memory_per_client_is_within_the_budget() -> None:
    rows = _benign(np.random.default_rng(1), 150)
    names = [f"client-{c:06d}" for c in range(2000)]

    def traced(clients: list[str], per: int) -> float:
        tracemalloc.start()
        monitor = ExtractionMonitor()
        for name in clients:
            for row in rows[:per]:
                monitor.observe(name, row[None, :])
        used = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert len(monitor) == len(clients)
        return used / len(clients)

    assert traced(names, 1) < ONE_QUERY_BUDGET
    assert traced(names[:100], 150) < FULL_BUDGET


def test_small_and_zero_distances_do_not_cancel() -> None:
    """Float32 rows, float64 direct differences: a 1e-3 step next to pixels of 16 is measured
    exactly (|q|^2 - 2 q.r + |r|^2 in float32 would give 0), and a repeated query gives
    distances of exactly 0, hence the top score."""
    base = np.full((1, 64), 16.0, dtype=np.float32)
    step = base.copy()
    step[0, 0] -= np.float32(1e-3)
    monitor = ExtractionMonitor(min_samples=2, score_every=1)
    monitor.observe("stepper", base)
    monitor.observe("stepper", step)
    state = monitor._clients["stepper"]
    assert state.distances[0] == pytest.approx(float(base[0, 0] - step[0, 0]), rel=1e-12)
    for _ in range(25):
        repeated = monitor.observe("repeater", base)
    state = monitor._clients["repeater"]
    assert np.all(state.distances[: state.measured] == 0.0) and repeated == 1.0
