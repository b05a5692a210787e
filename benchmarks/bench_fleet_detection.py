"""The extraction statistic's state at fleet scale (issue 14): the options measured against the
earlier float64 design (``window`` float64 rows per client, LRU at 4,096 clients) in one run.

    python3 benchmarks/bench_fleet_detection.py [--fleet 100000] [--quick] [--only PART]

No lab needed (the Redis shared-state option: ``bench_fleet_detection_redis.py``). Traffic is
the lab's: benign clients send held-out digits with
the lab traffic's pixel noise (``console.lab.traffic``), the attacker is the lab's extraction
walk (``console.lab.attacks.extraction``'s Jacobian walker, its surrogate refitted on labels
from a stand-in of the served model: the seed's scaled logistic regression). Parts:

  memory     bytes per client (tracemalloc) for a one-query client and for a full window;
  statistic  per option, with nothing evicted: 500 benign clients x 200 queries (share whose
             score ever passes the 0.4 alert threshold) and 10 extraction walks (queries to a
             score > 0.4), throughput in queries/s;
  sybil      an attacker sends 30 queries, then 300,000 one-query ids: is its state kept?
  requests   evidence by requests (the chosen defaults against the same monitor counting rows:
             every row of a request measured, scored once 20 distances exist): the walk sent
             in requests of 1-30 rows (requests to a score > 0.4), one request of 21 identical
             rows, and how many such requests evict an established attacker at ``max_clients``
             (131,072; 4,096 with --quick) and how long a 1024-row request takes.
  fleet      ``--fleet`` clients (1% send 300 queries, the rest a geometric number, mean 3) at
             10,000 queries/s with the attacker's walk at 1 query/s interleaved (one attacker
             query in every 10,000; ~9,000 distinct clients between two of them, so an LRU
             of 4,096 drops it): attacker queries to detection, clients held, benign share
             above 0.4, memory.

Every figure of an option is also given as a ratio to the float64 design of the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from console.detectors.extraction import (
    ExtractionMonitor,
    _ClientState,
    _not_before,
    shapiro_francia,
)
from console.lab.attacks.common import clip_pixels, digits_split
from console.lab.attacks.extraction import _fit, _Walker
from console.lab.traffic import NOISE_SIGMA

THRESHOLD = 0.4  # configs/prometheus/aml-alerts.yml, AMLExtractionSuspected
FLEET_RATE = 10_000.0
ATTACK_RATE = 1.0
Observe = Callable[[str, NDArray[np.float32]], float]


@dataclass
class _Legacy:
    queries: NDArray[np.float64]
    norms: NDArray[np.float64]
    distances: NDArray[np.float64]
    pending: NDArray[np.float64]
    waiting: int = 0
    count: int = 0
    measured: int = 0
    score: float = 0.0


class LegacyMonitor:
    """The earlier design (float64 rows via norms and dot products, plain LRU), as it was for
    requests of one row (all this benchmark sends)."""

    def __init__(self, window: int = 100, max_clients: int = 4096, score_every: int = 16):
        self.window, self.min_samples, self.max_clients = window, 20, max_clients
        self.score_every = score_every
        self._clients: OrderedDict[str, _Legacy] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def score(self, client: str) -> float:
        state = self._clients.get(client)
        return 0.0 if state is None else state.score

    def observe(self, client: str, rows: NDArray[np.float32]) -> float:
        state = self._clients.get(client)
        if state is None:
            w, n = rows.shape[1], self.window
            state = _Legacy(
                np.empty((n, w)), np.empty(n), np.empty(n), np.empty((self.score_every, w))
            )
            self._clients[client] = state
            if len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
            if (
                rows.shape[0] == 1
                and state.waiting < self.score_every - 1
                and state.count > self.min_samples
            ):
                state.pending[state.waiting] = rows[0]
                state.waiting += 1
                return state.score
        state.pending[state.waiting] = rows[0]  # one row per request, all this benchmark sends
        state.waiting += 1
        if state.waiting == self.score_every or state.count < self.min_samples + 1:
            self._flush(state)
        return state.score

    def _flush(self, state: _Legacy) -> None:
        new = state.pending[: state.waiting]
        new_norms = np.einsum("ij,ij->i", new, new)
        held = min(state.count, self.window)
        nearest = np.full(len(new), np.inf)
        if held:
            to_window = new @ state.queries[:held].T
            to_window += state.norms[:held]
            nearest = to_window.min(axis=1)
        if len(new) > 1:
            among = new_norms[None, :] - 2.0 * (new @ new.T)
            among[np.triu(np.ones((len(new), len(new)), dtype=bool))] = np.inf
            nearest = np.minimum(nearest, among.min(axis=1))
        nearest += new_norms
        if state.count == 0:
            nearest = nearest[1:]
        found = np.sqrt(np.maximum(nearest, 0.0))
        n = self.window
        state.distances[(state.measured + np.arange(len(found))) % n] = found
        state.measured += len(found)
        slots = (state.count + np.arange(len(new))) % n
        state.queries[slots], state.norms[slots] = -2.0 * new, new_norms
        state.count += len(new)
        state.waiting = 0
        if state.measured >= self.min_samples:
            d = state.distances[: min(state.measured, n)]
            state.score = 1.0 if d.max() == d.min() else max(0.0, 1.0 - shapiro_francia(d))


def norm_trick(rows: NDArray[np.float32], held: int) -> NDArray[np.float64]:
    """Float32 storage, float64 |q|^2 - 2 q.r + |r|^2 (the earlier arithmetic)."""
    block = rows.astype(np.float64)
    norms = np.einsum("ij,ij->i", block, block)
    squared = norms[held:, None] - 2.0 * (block[held:] @ block.T) + norms[None, :]
    squared[_not_before(len(rows) - held, held)] = np.inf
    nearest: NDArray[np.float64] = np.sqrt(np.maximum(squared.min(axis=1), 0.0))
    return nearest


class NormTrickMonitor(ExtractionMonitor):
    _min_distances = staticmethod(norm_trick)


class PreallocatedMonitor(ExtractionMonitor):
    """Full-size buffers from a client's first query (no growth)."""

    def _new_state(self, width: int) -> _ClientState:
        rows = np.empty((self.ring + self.score_every, width), np.float32)
        return _ClientState(rows, np.empty(self.window, np.float64))


OPTIONS: dict[str, Callable[[], Any]] = {
    "float64_ring100_current": lambda: LegacyMonitor(max_clients=10**9),
    "float32_ring100_norm_trick": lambda: NormTrickMonitor(ring=100, max_clients=10**9),
    "float32_ring100": lambda: ExtractionMonitor(ring=100, max_clients=10**9),
    "float32_ring50": lambda: ExtractionMonitor(ring=50, max_clients=10**9),
    "float32_ring32_chosen": lambda: ExtractionMonitor(max_clients=10**9),
    "float32_ring32_preallocated": lambda: PreallocatedMonitor(max_clients=10**9),
}
BASELINE = "float64_ring100_current"


def benign_rows(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
    """``n`` queries as the lab's benign clients send them: held-out digits plus pixel noise."""
    pool = digits_split().x_test
    rows = pool[rng.integers(len(pool), size=n)]
    return clip_pixels(rows + rng.normal(0.0, NOISE_SIGMA, rows.shape))


_served: Any = None


def attack_walk(seed: int) -> Iterator[NDArray[np.float32]]:
    """The lab's extraction queries, one at a time, refitting the surrogate as the attack does
    (labels from a stand-in of the served model)."""
    global _served
    split = digits_split()
    if _served is None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        _served = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        _served.fit(split.x_train, split.y_train)
    walker = _Walker("jacobian", np.random.default_rng(seed), 30, 2.0, 10)
    xs: list[NDArray[np.float32]] = []
    fitted_on = 0
    while True:
        walk = walker.next_walk()
        yield from walk
        xs.append(walk)
        answered = sum(len(x) for x in xs)
        if answered >= max(20, int(1.5 * fitted_on)):
            x = np.concatenate(xs)
            walker.surrogate = _fit(x, _served.predict(x), "logreg")
            fitted_on = answered


def traced_bytes(run: Callable[[], object]) -> tuple[int, object]:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = run()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, kept


def bytes_per_client(make: Callable[[], Any], queries: int, clients: int) -> float:
    rows = benign_rows(np.random.default_rng(1), queries)

    def run() -> object:
        monitor = make()
        for c in range(clients):
            name = f"client-{c:06d}"
            for row in rows:
                monitor.observe(name, row[None, :])
        return monitor

    # Measured beside the same client names held in a plain list: the ids themselves are the
    # gateway's anyway.
    names_only, _ = traced_bytes(lambda: [f"client-{c:06d}" for c in range(clients)])
    total, _ = traced_bytes(run)
    return (total - names_only) / clients


def detection_queries(
    observe: Observe, client: str, walk: Iterator[NDArray[np.float32]], batch: int = 1
) -> int | None:
    """Requests of ``batch`` successive queries of the walk until a score > 0.4 (<= 300)."""
    for sent in range(1, 301):
        if observe(client, np.stack([next(walk) for _ in range(batch)])) > THRESHOLD:
            return sent
    return None


def statistic(make: Callable[[], Any], quick: bool) -> dict[str, Any]:
    monitor = make()
    clients, per = (100, 200) if quick else (500, 200)
    rng = np.random.default_rng(7)
    order = np.repeat(np.arange(clients), per)
    rng.shuffle(order)
    rows = benign_rows(rng, len(order))
    worst = np.zeros(clients)
    names = [f"benign-{c}" for c in range(clients)]
    spent = 0.0
    for c, row in zip(order.tolist(), rows, strict=True):
        t = time.perf_counter()
        s = monitor.observe(names[c], row[None, :])
        spent += time.perf_counter() - t
        worst[c] = max(worst[c], s)
    detected = [
        detection_queries(monitor.observe, f"mallory-{seed}", attack_walk(seed))
        for seed in range(3 if quick else 10)
    ]
    caught = [d for d in detected if d is not None]
    for _ in range(2):  # throughput: the best of three passes (other processes share the CPU)
        again, t = make(), time.perf_counter()
        for c, row in zip(order.tolist(), rows, strict=True):
            again.observe(names[c], row[None, :])
        spent = min(spent, time.perf_counter() - t)
    return {
        "benign_share_ever_above_0.4": float((worst > THRESHOLD).mean()),
        "benign_median_score": float(np.median([monitor.score(n) for n in names])),
        "attacker_queries_to_detection_median": float(np.median(caught)) if caught else None,
        "attacker_queries_to_detection_max": max(caught) if caught else None,
        "attackers_missed": len(detected) - len(caught),
        "queries_per_s": len(order) / spent,
    }


def sybil(make: Callable[..., Any], ids: int, rows: int = 1, **kw: int) -> dict[str, Any]:
    """An attacker sends 30 queries, then ``ids`` throwaway ids one request of ``rows``
    identical rows each (with ``rows`` > 1: as many as each needs to be established, until the
    attacker is evicted)."""
    monitor, walk = make(**kw), attack_walk(11)
    for _ in range(30):
        monitor.observe("mallory", next(walk)[None, :])
    flood = np.repeat(benign_rows(np.random.default_rng(5), 1), rows, axis=0)
    requests = i = 0
    while i < ids and (rows == 1 or "mallory" in monitor._clients):
        i, requests = i + 1, requests + 1
        monitor.observe(f"sybil-{i}", flood)
        while rows > 1 and monitor._clients[f"sybil-{i}"].tier < monitor._top:
            requests += 1
            monitor.observe(f"sybil-{i}", flood)
    kept = "mallory" in monitor._clients
    if rows > 1:  # ids and requests until the attacker was evicted (None: it was not)
        return {"attacker_evicted_after_ids": None if kept else i, "requests": requests, **kw}
    more = detection_queries(monitor.observe, "mallory", walk)
    return {"attacker_state_kept": kept, "attacker_queries_to_detection": more and 30 + more}


def rows_counted(**kw: int) -> ExtractionMonitor:
    """The earlier evidence: every row of a request measured, scored and established by rows."""
    return ExtractionMonitor(rows_per_request=1024, min_requests=1, **kw)


def requests_part(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    flood = np.repeat(benign_rows(np.random.default_rng(5), 1), 21, axis=0)
    big = benign_rows(np.random.default_rng(6), 1024)
    for name, make in (("rows_counted_earlier", rows_counted), ("chosen", ExtractionMonitor)):
        one = make()
        figures: dict[str, Any] = {
            "one_request_of_21_identical_rows_score": one.observe("s", flood)
        }
        figures["established_by_it"] = one._clients["s"].tier == one._top
        for batch in (1, 4, 10, 30):
            found = [
                detection_queries(make().observe, "m", attack_walk(s), batch) for s in range(3)
            ]
            caught = [f for f in found if f is not None]
            figures[f"walk_batch_{batch}_requests_to_detection"] = max(caught) if caught else None
            figures[f"walk_batch_{batch}_missed"] = len(found) - len(caught)
        rng, benign = np.random.default_rng(7), make()
        worst = max(benign.observe(f"b{i % 100}", benign_rows(rng, 4)) for i in range(5000))
        figures["benign_100_clients_of_4_row_requests_max_score"] = worst
        cap = 4096 if quick else 131_072
        figures["evict_established_attacker"] = sybil(make, 2 * cap, 21, max_clients=cap)
        monitor, t = make(), time.perf_counter()
        for i in range(200):
            monitor.observe(f"batch-{i % 20}", big)
        figures["ms_per_1024_row_request"] = (time.perf_counter() - t) / 200 * 1e3
        out[name] = figures
    return out


class Fleet:
    """``clients`` ids: 1% send 300 queries, the rest a geometric number (mean 3), shuffled."""

    def __init__(self, clients: int) -> None:
        rng = np.random.default_rng(21)
        self.clients, self.heavy = clients, clients // 100
        counts = rng.geometric(1.0 / 3.0, clients)
        counts[: self.heavy] = 300
        self.order = np.repeat(np.arange(clients), counts)
        rng.shuffle(self.order)


def fleet(make: Callable[[], Any], spec: Fleet, traced: bool) -> dict[str, Any]:
    monitor = make()
    names = [f"client-{c:06d}" for c in range(spec.clients)]
    every = int(FLEET_RATE / ATTACK_RATE)
    start = len(spec.order) // 20  # the attack starts once the fleet is in full swing
    walk, rng = attack_walk(3), np.random.default_rng(9)
    worst = np.zeros(spec.heavy)
    sent, detected, spent = 0, None, 0.0
    if traced:
        tracemalloc.start()
    for at in range(0, len(spec.order), 4096):
        chunk = spec.order[at : at + 4096]
        rows = benign_rows(rng, len(chunk))
        t = time.perf_counter()
        for i, (c, row) in enumerate(zip(chunk.tolist(), rows, strict=True)):
            if at + i >= start and (at + i - start) % every == 0:
                sent += 1
                if monitor.observe("mallory", next(walk)[None, :]) > THRESHOLD and not detected:
                    detected = sent
            s = monitor.observe(names[c], row[None, :])
            if c < spec.heavy and s > worst[c]:
                worst[c] = s
        spent += time.perf_counter() - t
    result: dict[str, Any] = {
        "fleet_queries": len(spec.order),
        "attacker_queries_sent": sent,
        "attacker_queries_to_detection": detected,
        "clients_held": len(monitor),
        "attacker_held_at_end": "mallory" in monitor._clients,
        "benign_share_ever_above_0.4": float((worst > THRESHOLD).mean()),
        "queries_per_s": (len(spec.order) + sent) / spent,
    }
    if traced:
        result["traced_bytes_total"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        result["traced_bytes_per_client"] = result["traced_bytes_total"] / len(monitor)
    return result


def _ratios(figures: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    return {
        k: v / base[k]
        for k, v in figures.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and base.get(k)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleet", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="smaller samples, for a smoke run")
    parser.add_argument("--only", choices=["requests", "fleet"], help="run this part alone")
    args = parser.parse_args()
    began = time.perf_counter()
    out: dict[str, Any] = {"fleet_rate_qps": FLEET_RATE, "attack_rate_qps": ATTACK_RATE}
    if args.only != "fleet":
        out["requests"] = requests_part(args.quick)
    if args.only is None:
        run_options(args.quick, out)
    if args.only != "requests":
        out["fleet"] = fleet_part(args.fleet // 10 if args.quick else args.fleet)
    out["seconds"] = time.perf_counter() - began
    sys.stdout.write(json.dumps(out, indent=2) + "\n")


def run_options(quick: bool, out: dict[str, Any]) -> None:
    options: dict[str, dict[str, Any]] = {}
    for name, make in OPTIONS.items():
        options[name] = {
            "bytes_per_one_query_client": bytes_per_client(make, 1, 2000),
            "bytes_per_full_client": bytes_per_client(make, 150, 100 if quick else 300),
            **statistic(make, quick),
        }
    for figures in options.values():
        figures["ratio_vs_current"] = _ratios(figures, options[BASELINE])
    out["options"] = options
    ids = 30_000 if quick else 300_000
    out["sybil_flood"] = {
        "ids": ids,
        "float64_lru4096_current": sybil(LegacyMonitor, ids),
        "chosen_defaults": sybil(ExtractionMonitor, ids),
    }


def fleet_part(clients: int) -> dict[str, Any]:
    spec = Fleet(clients)
    current = fleet(LegacyMonitor, spec, traced=False)
    chosen = fleet(ExtractionMonitor, spec, traced=False)
    chosen["traced"] = fleet(ExtractionMonitor, spec, traced=True)
    chosen["ratio_vs_current"] = _ratios(chosen, current)
    return {"clients": spec.clients, "float64_lru4096_current": current, "chosen_defaults": chosen}


if __name__ == "__main__":
    main()
