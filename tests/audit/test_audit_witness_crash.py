"""Log and witness stay consistent under concurrent appenders and kill -9 mid-append: the
witness is never ahead of the log, trails it by at most the append that was killed, and the
next append brings it level."""

from __future__ import annotations

import multiprocessing
import random
import signal
import time
from pathlib import Path

import pytest
from audit_helpers import KEY, append_forever, append_then_kill9, append_witnessed, event, lines

from console.audit import AuditLog, verify_log
from console.audit.witness import load_witness

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(
        tmp_path / "audit" / "audit.jsonl", KEY, witness_path=tmp_path / "state" / "log.witness"
    )


def witnessed(log: AuditLog) -> int:
    assert log.witness_path is not None
    witness = load_witness(log.witness_path, KEY)
    return 0 if witness is None else witness.count


def assert_consistent(log: AuditLog) -> int:
    """verify passes with the witness; returns how many records the log holds."""
    report = verify_log(log.path, KEY, log.checkpoint_path, log.witness_path)
    assert report.ok, report.problem
    assert witnessed(log) <= report.records
    return report.records


def test_four_concurrent_appenders_keep_the_witness_level(log: AuditLog):
    args = (str(log.path), str(log.checkpoint_path), str(log.witness_path))
    procs = [SPAWN.Process(target=append_witnessed, args=(*args, w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert assert_consistent(log) == 200
    assert witnessed(log) == 200
    assert load_witness(log.witness_path, KEY).head == log.tail(1)[0].hash  # type: ignore[arg-type, union-attr]


@pytest.mark.parametrize("point", ["before-checkpoint", "before-witness", "mid-witness"])
def test_kill9_at_each_point_of_an_append(log: AuditLog, point: str):
    for i in range(3):
        log.append(event(step=f"s{i}"))
    proc = SPAWN.Process(
        target=append_then_kill9,
        args=(str(log.path), str(log.checkpoint_path), str(log.witness_path), point),
    )
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL
    # The killed append's line was fsynced before the kill; the witness still names seq 3
    # (mid-witness leaves its temp file behind, never a half-written witness).
    assert assert_consistent(log) == 4
    assert witnessed(log) == 3
    log.append(event(step="after"))
    assert assert_consistent(log) == 5 and witnessed(log) == 5


def test_kill9_at_random_moments(log: AuditLog):
    rng = random.Random(20261201)
    args = (str(log.path), str(log.checkpoint_path), str(log.witness_path))
    for _ in range(8):
        before = len(lines(log.path)) if log.path.exists() else 0
        proc = SPAWN.Process(target=append_forever, args=args)
        proc.start()
        # The child's imports take from 0.2 s to seconds on a loaded machine: kill it at a
        # random moment once it appends, not at a fixed time that may fall before its first.
        deadline = time.monotonic() + 60
        while not (log.path.exists() and len(lines(log.path)) > before):
            assert time.monotonic() < deadline, "the child never appended"
            time.sleep(0.01)
        time.sleep(rng.random() * 0.3)
        proc.kill()
        proc.join(timeout=30)
        records = assert_consistent(log)
        assert records - witnessed(log) <= 1
        log.append(event(step="between"))  # the next writer carries on
        assert witnessed(log) == records + 1
    total = assert_consistent(log)
    assert len(lines(log.path)) == total > 8 * 2, "the children hardly appended"
