"""Several processes appending at once neither interleave nor fork the chain."""

from __future__ import annotations

import multiprocessing

from audit_helpers import KEY, append_many

from console.audit import verify_log


def test_four_processes_fifty_records_each(audit_log):
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=append_many, args=(str(audit_log.path), str(audit_log.checkpoint_path), w, 50)
        )
        for w in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    report = verify_log(audit_log.path, KEY, audit_log.checkpoint_path)
    assert report.ok, report.problem
    assert report.records == 200
    records = audit_log.records()
    for w in range(4):
        steps = [r.step for r in records if r.run_id == f"worker-{w}"]
        assert steps == [f"s{i}" for i in range(50)]
