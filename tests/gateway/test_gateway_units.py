"""Pure parts of the gateway: detectors, label bounding, trace context, policy windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import median_filter
from scipy.stats import shapiro

from console.detectors.extraction import ExtractionMonitor, shapiro_francia
from console.detectors.squeezing import bit_depth, median_smoothing
from console.lab.gateway.client_slots import OTHER, ClientSlots
from console.lab.gateway.telemetry import parse_traceparent


def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float32)


@pytest.mark.parametrize("size", [2, 3])
def test_median_smoothing_matches_a_reference_filter(size: int) -> None:
    x = _digits()[:200]
    ours = median_smoothing(size)(x)
    images = x.reshape(-1, 8, 8)
    before, after = (size - 1) // 2, size // 2
    padded = np.pad(images, ((0, 0), (before, after), (before, after)), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(1, 2))
    reference = np.median(windows, axis=(-2, -1)).reshape(-1, 64)
    assert np.array_equal(ours, reference)
    if size == 3:  # scipy's filter on the same reflect mode agrees too
        assert np.array_equal(
            ours, median_filter(images, size=(1, 3, 3), mode="mirror").reshape(-1, 64)
        )


def test_bit_depth_keeps_the_pixel_range() -> None:
    x = np.linspace(0, 16, 64, dtype=np.float32)[None, :]
    squeezed = bit_depth(2)(x)
    assert np.allclose(np.unique(squeezed), [0.0, 16 / 3, 32 / 3, 16.0])


def test_shapiro_francia_tracks_shapiro_wilk() -> None:
    rng = np.random.default_rng(1)
    for sample in (rng.normal(size=100), rng.exponential(size=100), rng.uniform(size=40)):
        assert abs(shapiro_francia(sample) - shapiro(sample).statistic) < 0.02


def test_extraction_score_separates_probing_from_natural_queries() -> None:
    x = _digits()
    rng = np.random.default_rng(0)
    monitor = ExtractionMonitor(window=100)
    natural = x[rng.permutation(len(x))[:100]] + rng.normal(0, 0.5, (100, 64))
    for row in np.clip(natural, 0, 16).astype(np.float32):
        benign = monitor.observe("benign", row[None, :])
    # A synthetic walk: one seed image nudged a pixel at a time (the probing PRADA targets).
    probe = x[0].copy()
    for i in range(100):
        probe[i % 64] = 16.0 - probe[i % 64]
        attacker = monitor.observe("attacker", probe[None, :].astype(np.float32))
    assert benign < 0.1 < attacker
    assert monitor.observe("fresh", x[:5]) == 0.0  # fewer than 20 distances: no verdict


def _brute_force_distances(queries: np.ndarray, window: int) -> np.ndarray:
    """Each query's minimum L2 distance to the ``window`` queries before it (not the first's)."""
    return np.array(
        [
            np.sqrt(((queries[max(0, t - window) : t] - queries[t]) ** 2).sum(axis=1)).min()
            for t in range(1, len(queries))
        ]
    )


def test_extraction_distances_match_a_brute_force_reference() -> None:
    rng = np.random.default_rng(5)
    walk = np.cumsum(rng.normal(0, 1.0, (90, 64)), axis=0) + rng.uniform(0, 16, 64)
    queries = walk.astype(np.float32)
    monitor = ExtractionMonitor(window=30, min_samples=10, score_every=1)
    for row in queries:
        score = monitor.observe("walker", row[None, :])
    want = _brute_force_distances(queries.astype(np.float64), 30)[-30:]
    state = monitor._clients["walker"]
    np.testing.assert_allclose(np.sort(state.distances), np.sort(want), rtol=1e-9, atol=1e-9)
    assert score == pytest.approx(1.0 - shapiro_francia(want), abs=1e-12)


def test_batched_scoring_follows_the_per_query_score() -> None:
    """Measured in batches of 16 (the gateway's default), a client's score is the per-query
    score of at most 15 queries before, and a whole request is measured at once."""
    x = _digits()
    rng = np.random.default_rng(1)
    queries = np.clip(x[rng.permutation(len(x))[:160]] + rng.normal(0, 0.5, (160, 64)), 0, 16)
    queries = queries.astype(np.float32)
    exact, batched = ExtractionMonitor(score_every=1), ExtractionMonitor()
    exact_scores = [exact.observe("c", row[None, :]) for row in queries]
    batched_scores = [batched.observe("c", row[None, :]) for row in queries]
    for t, score in enumerate(batched_scores):
        recent = exact_scores[max(0, t - 15) : t + 1]
        assert any(score == pytest.approx(s, abs=0.02) for s in recent)
    # Ten requests of four rows (the rows one request contributes): scored as a whole, each
    # request at once, the same as query by query.
    whole, exact_whole = ExtractionMonitor(), ExtractionMonitor(score_every=1)
    for i in range(10):
        request = queries[4 * i : 4 * i + 4]
        score, exact_score = whole.observe("w", request), exact_whole.observe("w", request)
    assert score > 0 and score == pytest.approx(exact_score, abs=1e-9)


def test_extraction_monitor_memory_is_bounded() -> None:
    monitor = ExtractionMonitor(window=10, max_clients=3, score_every=4)
    for client in ("a", "b", "c", "d"):
        for _ in range(15):
            monitor.observe(
                client, np.random.default_rng(0).uniform(0, 16, (1, 64)).astype(np.float32)
            )
    assert len(monitor) == 3 and monitor.score("a") == 0.0
    state = monitor._clients["d"]
    assert state.queries.shape == (10, 64) and len(state.distances) == 10
    assert state.pending.shape == (4, 64)


def test_client_labels_are_bounded_and_idle_ones_give_way() -> None:
    slots = ClientSlots(capacity=2, idle_s=10)
    assert slots.label("a", now=0) == ("a", None)
    assert slots.label("b", now=1) == ("b", None)
    assert slots.label("c", now=2) == (OTHER, None)  # both places held by active clients
    assert slots.label("a", now=5) == ("a", None)
    assert slots.label("c", now=12) == ("c", "b")  # b idle for 11 s: its series go


def _answer(slots: ClientSlots, client: str, now: float, **kw: float) -> str:
    label, _ = slots.label(client, now=now)
    slots.observe(client, outcome="ok", rows=1, model="digits", now=now, **kw)  # type: ignore[arg-type]
    return label


def test_label_slots_go_to_the_riskiest_client_not_the_first_to_come() -> None:
    """200 throwaway ids take every slot first; the extraction attacker that follows gets one
    as soon as its score rises, from the least risky holder (whose series are dropped)."""
    slots = ClientSlots(capacity=200, idle_s=600, rebalance_s=0)
    for i in range(200):
        assert _answer(slots, f"sybil-{i}", now=i * 0.1) == f"sybil-{i}"
    assert slots.used == 200 and slots.new_clients == 200
    now = 20.0
    assert _answer(slots, "mallory", now, extraction=0.0) == OTHER  # no evidence yet
    label, evicted = slots.label("mallory", now=21)
    assert (label, evicted) == (OTHER, None)
    slots.observe("mallory", outcome="ok", rows=1, model="digits", extraction=0.86, now=21)
    label, evicted = slots.label("mallory", now=22)
    assert label == "mallory" and evicted is not None and evicted.startswith("sybil-")
    assert slots.is_labelled("mallory") and not slots.is_labelled(evicted)


def test_a_throwaway_ids_single_flagged_request_does_not_outrank_a_prober() -> None:
    """Rates are shrunk by a prior of 10 requests: one flagged row out of one is a risk of
    1/11, far below an extraction score of 0.5."""
    slots = ClientSlots(capacity=1, idle_s=600, rebalance_s=0)
    _answer(slots, "sybil", 0, flagged_rows=1)
    assert slots.label("prober", now=1) == (OTHER, None)
    slots.observe("prober", outcome="ok", rows=1, model="digits", extraction=0.5, now=1)
    assert slots.label("prober", now=2) == ("prober", "sybil")
    # ... and fresh throwaway ids, one flagged request each, cannot take it back.
    for t in range(3, 200):
        assert _answer(slots, f"sybil-{t}", t, flagged_rows=1) == OTHER


def test_a_margin_keeps_slots_from_flapping_between_equals() -> None:
    slots = ClientSlots(capacity=1, idle_s=600, margin=0.05, rebalance_s=0)
    _answer(slots, "a", 0, extraction=0.5)
    for t in range(1, 10):
        assert _answer(slots, "b", t, extraction=0.53) == OTHER
    assert _answer(slots, "b", 10, extraction=0.6) == OTHER  # promoted on its next request
    assert slots.label("b", now=11) == ("b", "a")


def test_the_riskiest_unlabelled_client_is_known_without_a_slot() -> None:
    """Detection does not depend on a slot: with every slot held by riskier clients, the
    attacker in `other` is still named, with its answered rate."""
    slots = ClientSlots(capacity=2, idle_s=600, tau_s=10, rebalance_s=0)
    for holder in ("x", "y"):
        slots.label(holder, now=0)
        for _ in range(100):
            slots.observe(holder, outcome="blocked", now=0)  # refused share ~0.9
    for i in range(100):
        label = _answer(slots, "mallory", 1 + i * 0.05, extraction=0.86)
        assert label == OTHER
    _answer(slots, "slow", 5.0, extraction=0.99)  # one answer: under the rate floor
    worst = slots.riskiest_unlabelled("digits", now=6.0)
    assert worst is not None and worst.client == "mallory"
    assert worst.extraction["digits"] == 0.86 and worst.answered_rate > 1
    listed = [c.client for c in slots.unlabelled(now=6.0)]
    assert listed == ["slow", "mallory"]  # by risk: 0.99, 0.86
    assert slots.riskiest_unlabelled("digits", now=6.0 + 601) is None  # idle since


def test_tracked_clients_are_bounded_and_holders_kept() -> None:
    slots = ClientSlots(capacity=2, idle_s=600, max_tracked=50)
    for i in range(1000):
        slots.label(f"c{i}", now=i * 0.1)
    assert slots.tracked == 50 and slots.used == 2
    assert slots.is_labelled("c0") and slots.is_labelled("c1")


def test_traceparent_parsing() -> None:
    trace, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    assert parse_traceparent(f"00-{trace}-{parent}-01") == (trace, parent)
    for bad in (None, "", "00-xyz-abc-01", f"00-{'0' * 32}-{parent}-01", f"00-{trace}-zz-01"):
        assert parse_traceparent(bad) is None


def test_sink_batch_across_two_files_writes_both_and_keeps_running(tmp_path: Path) -> None:
    """At midnight one batch holds lines of two days (two files): both are written and the
    writer thread lives on (it used to die on a KeyError, dropping everything after)."""
    from console.lab.gateway.sinks import JsonlSink

    drops: list[int] = []
    sink = JsonlSink("test", on_drop=lambda: drops.append(1))
    day1, day2 = tmp_path / "traces-2026-11-24.jsonl", tmp_path / "traces-2026-11-25.jsonl"
    sink._write([(day1, '{"a": 1}'), (day2, '{"b": 2}')])
    sink.start()
    sink.put(day2, '{"c": 3}')
    sink.close()
    assert day1.read_text() == '{"a": 1}\n'
    assert day2.read_text() == '{"b": 2}\n{"c": 3}\n'
    assert drops == []


def test_the_listing_of_other_is_one_scan_a_second_unless_a_slot_changes_hands() -> None:
    slots = ClientSlots(capacity=1, idle_s=600, rebalance_s=0)
    _answer(slots, "holder", 0)
    _answer(slots, "a", 0.1)
    assert [c.client for c in slots.unlabelled(now=0.2)] == ["a"]
    _answer(slots, "b", 0.3)  # a newcomer within the second: the listing is reused
    assert [c.client for c in slots.unlabelled(now=0.4)] == ["a"]
    assert [c.client for c in slots.unlabelled(now=1.3)] == ["a", "b"]
    slots.observe("b", outcome="ok", rows=1, model="digits", extraction=0.9, now=1.4)
    assert slots.label("b", now=1.5) == ("b", "holder")  # a slot changed hands: listed anew
    assert [c.client for c in slots.unlabelled(now=1.6)] == ["a", "holder"]
