"""Evidence by requests (attacker review F1): a request carries up to 1024 rows, so rows are
no measure of how much a client did. Tiers and scoring count requests; at most
``rows_per_request`` successive rows of a request are measured. Traffic is the lab's
(``extraction_support``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from extraction_support import THRESHOLD
from extraction_support import benign as _benign
from extraction_support import served as served  # noqa: F401 - the fixture
from extraction_support import walk as _walk
from numpy.typing import NDArray

from console.detectors.extraction import ExtractionMonitor

CHEAP = 21
"""Rows in one throwaway request: 20 distances, ``min_samples``, from a single request."""


def _identical(seed: int = 5) -> NDArray[np.float32]:
    return np.repeat(_benign(np.random.default_rng(seed), 1), CHEAP, axis=0)


def _requests_to_detection(monitor: ExtractionMonitor, walk: Iterator[Any], batch: int) -> int:
    for sent in range(1, 301):
        if monitor.observe("mallory", np.stack([next(walk) for _ in range(batch)])) > THRESHOLD:
            return sent
    raise AssertionError(f"requests of {batch} rows not detected in 300 requests")


def test_one_request_of_identical_rows_is_no_evidence() -> None:
    """21 identical rows (all distances 0: the top score once scorable) from a fresh id: not
    scored, not established, and only ``rows_per_request`` of them measured."""
    monitor = ExtractionMonitor()
    assert monitor.observe("throwaway", _identical()) == 0.0
    assert monitor.score("throwaway") == 0.0
    state = monitor._clients["throwaway"]
    assert state.requests == 1 and state.count == monitor.rows_per_request == 4
    assert state.tier < monitor._top  # not established
    # The same rows counted as rows (the earlier evidence) scored 1.0 and established at once.
    rows_counted = ExtractionMonitor(rows_per_request=1024, min_requests=1)
    assert rows_counted.observe("throwaway", _identical()) == 1.0
    assert rows_counted._clients["throwaway"].tier == rows_counted._top


def test_scored_only_after_min_requests() -> None:
    """Repeating the request: enough distances after 6 requests of 4 measured rows, scored
    (and established) at the 10th request, not before."""
    monitor = ExtractionMonitor()
    scores = [monitor.observe("repeater", _identical()) for _ in range(monitor.min_requests)]
    assert scores[:-1] == [0.0] * (monitor.min_requests - 1) and scores[-1] == 1.0
    assert monitor._clients["repeater"].tier == monitor._top


def test_twenty_throwaway_ids_neither_outrank_nor_evict_an_attacker(served: Any) -> None:
    """An attacker established by 40 one-row walk queries (scored past the threshold), then 20
    throwaway ids with one request of 21 identical rows each, at max_clients = 8: the ids
    score 0 (the console's top 20 by score still shows the attacker first) and evict only
    each other."""
    monitor = ExtractionMonitor(max_clients=8)
    walk = _walk(3, served)
    for _ in range(40):
        attacker = monitor.observe("mallory", next(walk)[None, :])
    assert attacker > THRESHOLD
    for c in range(5):  # other benign clients, established
        for row in _benign(np.random.default_rng(c), 25):
            monitor.observe(f"benign-{c}", row[None, :])
    kept = monitor._clients["mallory"]
    throwaway = [f"sybil-{i}" for i in range(20)]
    for name in throwaway:
        assert monitor.observe(name, _identical()) == 0.0
    assert monitor._clients["mallory"] is kept and len(monitor) == 8
    assert sum(name in monitor._clients for name in throwaway) == 2  # 8 - 6 established
    ranked = sorted(monitor._clients, key=monitor.score, reverse=True)
    assert ranked[0] == "mallory"


def test_eviction_takes_newcomers_established_by_requests(served: Any) -> None:
    """The real cost: at max_clients = 8 (7 established at most) the attacker, established and
    least recent, goes when the 7th newcomer is established, each by ``min_requests``
    requests, not before: 7/8 * max_clients ids of min_requests requests."""
    monitor = ExtractionMonitor(max_clients=8)
    walk = _walk(3, served)
    for _ in range(40):
        monitor.observe("mallory", next(walk)[None, :])
    sent = 0
    for i in range(7):
        assert "mallory" in monitor._clients
        for _ in range(monitor.min_requests):
            monitor.observe(f"sybil-{i}", _identical())
            sent += 1
    assert "mallory" not in monitor._clients
    assert sent == 7 * monitor.min_requests


@pytest.mark.parametrize("batch", [1, 4, 10, 30])
def test_the_lab_walk_is_detected_in_requests_of_any_size(served: Any, batch: int) -> None:
    """The lab's walk (``lab attack extraction --batch``): one row per request detected at its
    37th query as before; requests of 4 to 30 rows at the 10th request (``min_requests``), the
    measured rows a run of successive queries from a random offset."""
    monitor = ExtractionMonitor(seed=1)
    sent = _requests_to_detection(monitor, _walk(3, served), batch)
    assert sent == (37 if batch == 1 else monitor.min_requests)


def test_a_request_is_measured_on_a_run_of_its_rows() -> None:
    """Of 1024 rows, 4 successive ones are measured; which ones varies with the offset."""
    rows = np.arange(1024 * 64, dtype=np.float32).reshape(1024, 64)
    monitor = ExtractionMonitor(seed=0)
    starts = set()
    for _ in range(20):
        run = monitor._measured_rows(rows)
        assert run.shape == (4, 64)
        first = int(run[0, 0]) // 64
        assert np.array_equal(run, rows[first : first + 4])
        starts.add(first)
    assert len(starts) > 1
    assert monitor._measured_rows(rows[:3]) is not None
    assert len(monitor._measured_rows(rows[:3])) == 3
