"""Benchmark what the witness costs each append: the same appends with and without it.

    python benchmarks/bench_audit_witness.py [--appends N] [--rounds R]

Two logs in one temporary directory (the witness in a sibling directory, as the default
``$XDG_STATE_HOME`` one is on another path of the same disk), appended to in alternating rounds
by this one process, so both see the same disk and the same noise. Each append is a real
``AuditLog.append``: line, fsync, checkpoint, and for the witnessed log the witness read,
compared and replaced. The figure to read is the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from console.audit import AuditEvent, AuditLog, verify_log

KEY = b"benchmark-key-not-a-secret"
APPENDS = 200
ROUNDS = 5


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        kind="step-intent" if i % 2 == 0 else "step-outcome",
        operator="oncall-alice",
        environment="prod",
        run_id=f"run-{i // 8:06d}",
        runbook="block-extraction-client",
        step=f"step-{i % 8 // 2}",
        action="policy.set_budget",
        target=f"client-{i % 977:04d}",
        arguments={"client_id": f"client-{i % 977:04d}", "qpm": 30, "ttl_s": 3600},
        before={"qpm": 600, "blocked": False},
        result="ok" if i % 2 else "planned",
    )


def _per_append(log: AuditLog, start: int, count: int) -> float:
    started = time.perf_counter()
    for i in range(start, start + count):
        log.append(_event(i))
    return (time.perf_counter() - started) / count


def run(appends: int = APPENDS, rounds: int = ROUNDS) -> dict[str, float]:
    """Seconds per append without and with the witness (medians of the rounds), and the ratio."""
    with tempfile.TemporaryDirectory(prefix="bench-witness-") as tmp:
        root = Path(tmp)
        plain = AuditLog(root / "plain" / "audit.jsonl", KEY)
        witnessed = AuditLog(
            root / "witnessed" / "audit.jsonl",
            KEY,
            witness_path=root / "state" / "aml-console" / "witness" / "audit.witness",
        )
        for log in (plain, witnessed):  # warm up: files, directories, imports
            _per_append(log, 0, 10)
        without: list[float] = []
        with_witness: list[float] = []
        for r in range(rounds):
            start = 10 + r * appends
            without.append(_per_append(plain, start, appends))
            with_witness.append(_per_append(witnessed, start, appends))
        for log in (plain, witnessed):
            report = verify_log(log.path, KEY, log.checkpoint_path, log.witness_path)
            if not report.ok:
                raise RuntimeError(f"benchmark log does not verify: {report.summary()}")
    base, witness = statistics.median(without), statistics.median(with_witness)
    return {
        "appends": float(appends * rounds),
        "append_s": base,
        "append_with_witness_s": witness,
        "witness_cost_s": witness - base,
        "ratio_with_to_without_witness": witness / base,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=APPENDS, help="appends per round")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    r = run(args.appends, args.rounds)
    print(f"appends: {int(r['appends']):,} per log, in {args.rounds} alternating rounds")
    print(f"append without witness: {r['append_s'] * 1e3:.3f} ms  (median of rounds)")
    print(f"append with witness:    {r['append_with_witness_s'] * 1e3:.3f} ms")
    print(f"witness cost per append: {r['witness_cost_s'] * 1e3:.3f} ms")
    print(f"ratio with / without witness: {r['ratio_with_to_without_witness']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
