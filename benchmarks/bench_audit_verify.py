"""Benchmark `verify_log` against `sha256sum` of the same 100,000-record log.

    python benchmarks/bench_audit_verify.py [--records N]

The log is built through ``AuditLog._append_batch`` (the path ``append`` itself takes, with one
fsync per 1,000 records instead of one per record) in a temporary directory, so every line is
exactly what production writes. ``sha256sum`` reads and hashes the same bytes: the floor for
any check that touches every byte.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from console.audit import AuditEvent, AuditLog, verify_log

KEY = b"benchmark-key-not-a-secret"
RECORDS = 100_000
BATCH = 1_000
REPEAT = 3


def _event(i: int) -> AuditEvent:
    """A realistic record: a policy step on one client, intent then outcome."""
    run, step = divmod(i, 8)
    client = f"client-{i % 977:04d}"
    return AuditEvent(
        kind="step-intent" if step % 2 == 0 else "step-outcome",
        operator="oncall-alice",
        environment="prod",
        run_id=f"run-{run:06d}",
        runbook="block-extraction-client",
        step=f"step-{step // 2}",
        action="policy.set_budget",
        target=client,
        arguments={"client_id": client, "qpm": 30, "ttl_s": 3600, "reason": "extraction"},
        before={"qpm": 600, "blocked": False},
        after={"qpm": 30, "blocked": False} if step % 2 else None,
        result="ok" if step % 2 else "planned",
        trace_id=f"{i:032x}",
    )


def build(directory: Path, records: int = RECORDS) -> AuditLog:
    log = AuditLog(directory / "audit.jsonl", KEY)
    for start in range(0, records, BATCH):
        log._append_batch([_event(i) for i in range(start, min(records, start + BATCH))])
    return log


def _median_time(fn: Callable[[], None], repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(records: int = RECORDS) -> dict[str, float]:
    """Build, time, and return the figures (seconds, records/s, MB/s, ratio)."""
    sha256sum = shutil.which("sha256sum")
    if sha256sum is None:
        raise RuntimeError("sha256sum (coreutils) is not installed")
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        started = time.perf_counter()
        log = build(Path(tmp), records)
        build_s = time.perf_counter() - started
        size = log.path.stat().st_size

        def verify() -> None:
            report = verify_log(log.path, KEY, log.checkpoint_path)
            if not report.ok or report.records != records:
                raise RuntimeError(f"benchmark log does not verify: {report.summary()}")

        def digest() -> None:
            subprocess.run([sha256sum, str(log.path)], check=True, capture_output=True)

        verify_s = _median_time(verify)
        sha_s = _median_time(digest)
    mb = size / 1e6
    return {
        "records": float(records),
        "log_mb": mb,
        "build_s": build_s,
        "verify_s": verify_s,
        "verify_records_per_s": records / verify_s,
        "verify_mb_per_s": mb / verify_s,
        "sha256sum_s": sha_s,
        "sha256sum_mb_per_s": mb / sha_s,
        "ratio_verify_to_sha256sum": verify_s / sha_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=RECORDS)
    args = parser.parse_args(argv)
    r = run(args.records)
    print(
        f"log: {int(r['records']):,} records, {r['log_mb']:.1f} MB (built in {r['build_s']:.1f} s)"
    )
    print(
        f"verify_log: {r['verify_s']:.3f} s  {r['verify_records_per_s']:,.0f} records/s  "
        f"{r['verify_mb_per_s']:.1f} MB/s  (median of {REPEAT})"
    )
    print(
        f"sha256sum:  {r['sha256sum_s']:.3f} s  {r['sha256sum_mb_per_s']:.1f} MB/s  "
        f"(median of {REPEAT})"
    )
    print(f"ratio verify / sha256sum: {r['ratio_verify_to_sha256sum']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
