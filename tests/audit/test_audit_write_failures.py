"""A record that cannot be written raises AuditWriteError and leaves the log valid."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
from audit_helpers import KEY, append_under_fsize_limit, event, lines, write_lines

from console.audit import AuditLog, verify_log
from console.audit.mirror import RedisStreamMirror
from console.config import Settings
from console.errors import AuditWriteError


def assert_valid(log: AuditLog, records: int) -> None:
    report = verify_log(log.path, KEY, log.checkpoint_path)
    assert report.ok, report.problem
    assert report.records == records


def test_missing_key(log_path: Path):
    log = AuditLog(log_path, None)
    with pytest.raises(AuditWriteError, match="no audit HMAC key configured"):
        log.check_writable()
    with pytest.raises(AuditWriteError, match="no audit HMAC key configured"):
        log.append(event())
    assert not log_path.exists()


def test_unreadable_key_file_names_the_file(tmp_path: Path):
    settings = Settings(
        run_dir=tmp_path,
        audit={"hmac_key_file": tmp_path / "missing.key"},  # type: ignore[arg-type]
    )
    log = AuditLog.from_settings(settings)
    with pytest.raises(AuditWriteError, match="missing.key"):
        log.append(event())


def test_directory_in_place_of_the_log(log_path: Path):
    log_path.mkdir(parents=True)
    log = AuditLog(log_path, KEY)
    with pytest.raises(AuditWriteError, match="cannot open audit log") as err:
        log.check_writable()
    assert "\n" not in str(err.value)
    with pytest.raises(AuditWriteError, match="cannot open audit log"):
        log.append(event())


def test_dev_full_as_the_log(tmp_path: Path):
    # Refused as a non-regular file before any write: a device could also be /dev/null,
    # which would swallow the audit trail and report success.
    log = AuditLog(Path("/dev/full"), KEY, tmp_path / "cp")
    with pytest.raises(AuditWriteError, match="not a regular file"):
        log.check_writable()
    with pytest.raises(AuditWriteError, match="not a regular file"):
        log.append(event())
    assert not (tmp_path / "cp").exists()


def test_dev_null_is_refused_too(tmp_path: Path):
    with pytest.raises(AuditWriteError, match="not a regular file"):
        AuditLog(Path("/dev/null"), KEY, tmp_path / "cp").append(event())


def test_partial_write_is_cut_back(audit_log, filled):
    # RLIMIT_FSIZE gives a real short write followed by EFBIG, the same path as ENOSPC.
    filled(3)
    before = audit_log.path.read_bytes()
    checkpoint_before = audit_log.checkpoint_path.read_bytes()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        outcome = pool.apply(
            append_under_fsize_limit,
            (str(audit_log.path), str(audit_log.checkpoint_path), 100),
        )
    assert outcome.startswith("AuditWriteError: cannot write audit log"), outcome
    assert "File too large" in outcome
    assert audit_log.path.read_bytes() == before  # nothing partial remains
    assert audit_log.checkpoint_path.read_bytes() == checkpoint_before
    assert_valid(audit_log, 3)
    audit_log.append(event())
    assert_valid(audit_log, 4)


def test_unserialisable_state_is_refused(audit_log, filled):
    filled(2)
    with pytest.raises(AuditWriteError, match="cannot be serialised"):
        audit_log.append(event(before={"raw": b"\xff\xfe"}))
    with pytest.raises(AuditWriteError, match="cannot be serialised"):
        audit_log.append(event(target="\udc80"))
    assert_valid(audit_log, 2)


def test_hanging_mirror_fails_within_its_deadline(audit_log, filled, hanging_port):
    filled(2)
    audit_log.mirror = RedisStreamMirror(f"redis://127.0.0.1:{hanging_port}/0", "aml:audit", 0.5)
    started = time.monotonic()
    with pytest.raises(AuditWriteError, match="not mirrored") as err:
        audit_log.append(event())
    assert time.monotonic() - started < 10  # loose: the deadline is 0.5 s per socket step
    assert "\n" not in str(err.value)
    # The local log is the authority: the record is committed there and the log is valid.
    assert_valid(audit_log, 3)
    with pytest.raises(AuditWriteError, match="not reachable"):
        audit_log.check_writable()


def test_refused_mirror_connection(audit_log, hanging_port):
    from support import free_port

    audit_log.mirror = RedisStreamMirror(f"redis://127.0.0.1:{free_port()}/0", "s", 0.5)
    with pytest.raises(AuditWriteError, match="did not accept record seq 1"):
        audit_log.append(event())


def test_append_refuses_when_the_tail_was_cut(audit_log, filled):
    filled(5)
    write_lines(audit_log.path, lines(audit_log.path)[:3])
    with pytest.raises(AuditWriteError, match="audit verify"):
        audit_log.append(event())
    with pytest.raises(AuditWriteError, match="audit verify"):
        audit_log.check_writable()


def test_append_refuses_after_a_torn_line(audit_log, filled):
    filled(3)
    with audit_log.path.open("ab") as fh:
        fh.write(b'{"action":null,"af')
    with pytest.raises(AuditWriteError, match="partial record"):
        audit_log.append(event())


def test_append_refuses_without_checkpoint(audit_log, filled):
    filled(3)
    audit_log.checkpoint_path.unlink()
    with pytest.raises(AuditWriteError, match="no checkpoint"):
        audit_log.append(event())


def test_append_refuses_a_forged_checkpoint(audit_log, filled):
    filled(3)
    audit_log.checkpoint_path.write_bytes(b'{"count":3}\n')
    with pytest.raises(AuditWriteError, match="checkpoint"):
        audit_log.append(event())


def test_crash_between_line_and_checkpoint_rolls_forward(audit_log, filled):
    filled(3)
    stale = audit_log.checkpoint_path.read_bytes()
    audit_log.append(event())
    audit_log.checkpoint_path.write_bytes(stale)  # as if the process died before step 3
    report = verify_log(audit_log.path, KEY, audit_log.checkpoint_path)
    assert report.ok and any("behind" in w for w in report.warnings)
    record = audit_log.append(event())
    assert record.seq == 5
    report = verify_log(audit_log.path, KEY, audit_log.checkpoint_path)
    assert report.ok and report.records == 5
    assert not [w for w in report.warnings if "behind" in w]
