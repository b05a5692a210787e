"""The approval round trip (request -> another operator approves -> apply) against a plain run
of the same runbook, on a real Redis.

    python benchmarks/bench_approval.py [--runs 30]

Starts a Redis with the project's launcher (own run dir and port), then measures, in one
process, with two operators (alice asks, bob approves) sharing one audit log:
  * plain:      ``plan`` + ``run`` of block-client, no approval (the baseline);
  * round trip: ``plan``, ``request_approval`` (Redis value + audit record), bob's ``approve``
                (read, checks, compare-and-set, audit record), alice's ``wait`` (returns at
                once: already decided), then ``run`` (which claims the approval);
  * wake-up:    alice already waiting; the time from bob's approval being stored to her
                ``wait`` returning: pub/sub wakes her; ``--poll-only`` shows the fallback poll.
Medians and ratios against the plain run are printed; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_support import free_port

from console.config import Settings
from console.lab import services
from console.runbooks.engine import RunbookEngine
from console.runbooks.loader import find_runbook

REPO = Path(__file__).resolve().parents[1]


def _settings(run_dir: Path, port: int, operator: str, **approvals: Any) -> Settings:
    return Settings(
        run_dir=run_dir,
        operator=operator,
        runbook_dirs=[REPO / "runbooks"],
        redis={"url": f"redis://127.0.0.1:{port}/0"},  # type: ignore[arg-type]
        audit={"hmac_key": "bench-key-not-a-secret"},  # type: ignore[arg-type]
        approvals={"required": "changes", **approvals},  # type: ignore[arg-type]
    )


def _ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def _plain(engine: RunbookEngine, i: int) -> None:
    loaded = find_runbook("block-client", engine.settings.runbook_dirs)
    plan = await engine.plan(loaded, {"client": f"plain-{i}", "reason": "bench"})
    state = await engine.run(plan, confirmed=True)
    assert state.status == "succeeded", state.error


async def _round_trip(alice: RunbookEngine, bob: RunbookEngine, i: int) -> None:
    loaded = find_runbook("block-client", alice.settings.runbook_dirs)
    plan = await alice.plan(loaded, {"client": f"approved-{i}", "reason": "bench"})
    need = alice.approval_for(plan)
    assert need is not None
    await alice.request_approval(plan, need)
    async with bob.approvals() as approvals:
        await approvals.approve(plan.run_id)
    decided = await alice.wait_for_approval(plan.run_id)
    assert decided.status == "approved"
    state = await alice.run(plan, confirmed=True)
    assert state.status == "succeeded" and state.approved_by == "bob", state.error


async def _wake_up(alice: RunbookEngine, bob: RunbookEngine, i: int) -> float:
    loaded = find_runbook("block-client", alice.settings.runbook_dirs)
    plan = await alice.plan(loaded, {"client": f"woken-{i}", "reason": "bench"})
    need = alice.approval_for(plan)
    assert need is not None
    await alice.request_approval(plan, need)
    waiting = asyncio.create_task(alice.wait_for_approval(plan.run_id))
    await asyncio.sleep(0.05)  # alice is subscribed and waiting
    async with bob.approvals() as approvals:
        await approvals.approve(plan.run_id)
        stored = time.perf_counter()
    await waiting
    return time.perf_counter() - stored


def run(runs: int, poll_only: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="aml-bench-") as tmp:
        port = free_port()
        alice_settings = _settings(Path(tmp), port, "alice")
        services.up(alice_settings, ["redis"])
        try:
            plain_engine = RunbookEngine(_settings(Path(tmp), port, "alice", required="never"))
            alice = RunbookEngine(alice_settings)
            bob = RunbookEngine(_settings(Path(tmp), port, "bob"))
            plain, round_trip, wake = [], [], []
            for i in range(runs):
                started = time.perf_counter()
                asyncio.run(_plain(plain_engine, i))
                plain.append(time.perf_counter() - started)
                started = time.perf_counter()
                asyncio.run(_round_trip(alice, bob, i))
                round_trip.append(time.perf_counter() - started)
            if poll_only:  # a store whose notices never arrive: only the poll wakes alice
                from console.adapters import approval_store

                approval_store.ApprovalStore._announce = _silent  # type: ignore[method-assign]
            for i in range(min(runs, 10)):
                wake.append(asyncio.run(_wake_up(alice, bob, i)))
        finally:
            services.down(alice_settings, ["redis"])
    plain_ms, trip_ms = _ms(plain), _ms(round_trip)
    return {
        "plain_median_ms": round(plain_ms, 2),
        "round_trip_median_ms": round(trip_ms, 2),
        "ratio": round(trip_ms / plain_ms, 2),
        "wake_up_median_ms": round(_ms(wake), 2),
        "poll_s": alice_settings.approvals.poll_s,
        "runs": runs,
    }


async def _silent(self: object, run_id: str) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--poll-only", action="store_true", help="No pub/sub notices.")
    args = parser.parse_args()
    result = run(args.runs, args.poll_only)
    how = f"poll every {result['poll_s']:g} s only" if args.poll_only else "pub/sub"
    sys.stdout.write(
        f"plain run median            {result['plain_median_ms']:8.2f} ms (baseline)\n"
        f"approval round trip median  {result['round_trip_median_ms']:8.2f} ms "
        f"(request, approve, wait, run): {result['ratio']:.2f}x the plain run\n"
        f"approval -> waiting run wakes {result['wake_up_median_ms']:6.2f} ms ({how})\n"
    )


if __name__ == "__main__":
    main()
