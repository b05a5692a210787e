"""Benchmark reading the last recorded promotion gate (``robustness.record_gate``, what every
promote-model plan does) from a 100,000-record audit log, against ``sha256sum`` of the same
file and against ``AuditLog.records()`` (parsing every record).

    python benchmarks/bench_gate_audit.py [--records N]

The log is built as ``bench_audit_verify`` builds it, with one authenticated gate record at
the start (the worst case: every line after it is read and none matches).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_audit_verify import BATCH, RECORDS, _event, _median_time

from console.audit import AuditEvent, AuditLog
from console.config import load_settings
from console.runbooks.actions.gate_audit import last_recorded_gate

KEY = "benchmark-key-not-a-secret-0123456789"


def _gate_record() -> AuditEvent:
    return AuditEvent(
        kind="step-outcome",
        operator="oncall-alice",
        environment="prod",
        run_id="run-gate",
        runbook="promote-model",
        step="gate",
        action="robustness.record_gate",
        target="model:digits",
        arguments={"model": "digits", "version": "3"},
        after={"gate": {"max_adversarial_success": 0.6}, "changed": {}},
        result="ok",
    )


def run(records: int = RECORDS) -> dict[str, float]:
    sha256sum = shutil.which("sha256sum")
    if sha256sum is None:
        raise RuntimeError("sha256sum (coreutils) is not installed")
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        path = Path(tmp) / "audit.jsonl"
        os.environ.update({"CONSOLE_AUDIT__PATH": str(path), "CONSOLE_AUDIT__HMAC_KEY": KEY})
        settings = load_settings()
        log = AuditLog(path, settings.audit_key())
        promoted = _gate_record().model_copy(
            update={"step": "promote", "action": "registry.promote", "after": {"champion": "3"}}
        )
        log._append_batch([_gate_record(), promoted])
        for start in range(0, records, BATCH):
            log._append_batch([_event(i) for i in range(start, min(records, start + BATCH))])

        def gate() -> None:
            found = last_recorded_gate(settings)
            if found is None or found.run_id != "run-gate":
                raise RuntimeError("the gate record was not found")

        def parse_all() -> None:
            log.records()

        def digest() -> None:
            subprocess.run([sha256sum, str(path)], check=True, capture_output=True)

        mb = path.stat().st_size / 1e6
        return {
            "records": float(records),
            "log_mb": mb,
            "gate_s": _median_time(gate),
            "records_s": _median_time(parse_all),
            "sha256sum_s": _median_time(digest),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=RECORDS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    r = run(args.records)
    print(f"log: {int(r['records']):,} records, {r['log_mb']:.1f} MB")
    print(f"last_recorded_gate: {r['gate_s']:.3f} s")
    print(f"AuditLog.records(): {r['records_s']:.3f} s")
    print(f"sha256sum:          {r['sha256sum_s']:.3f} s")
    print(
        f"ratio gate / sha256sum: {r['gate_s'] / r['sha256sum_s']:.1f}x; "
        f"gate / records(): {r['gate_s'] / r['records_s']:.2f}x  "
        f"(total {time.perf_counter() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
