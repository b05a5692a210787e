"""Record format: canonical lines, chain fields, reading back."""

from __future__ import annotations

from datetime import UTC

import pytest
from audit_helpers import KEY, event, lines
from pydantic import ValidationError

from console.audit import AuditEvent, AuditLog
from console.audit.records import (
    GENESIS_HASH,
    canonical_json,
    hmac_hex,
    record_body,
    record_line,
    sha256_hex,
)


def test_records_chain_and_are_canonical(audit_log, filled):
    records = filled(4)
    stored = lines(audit_log.path)
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert records[0].prev_hash == GENESIS_HASH
    for prev, cur in zip(records, records[1:], strict=False):
        assert cur.prev_hash == prev.hash
    for record, line in zip(records, stored, strict=True):
        assert record_line(record) == line
        body = record_body(record, exclude={"hash", "hmac"})
        assert record.hash == sha256_hex(canonical_json(body))
        assert record.hmac == hmac_hex(KEY, record.hash.encode())
        assert record.time.tzinfo is not None and record.time.utcoffset() == UTC.utcoffset(None)


def test_log_file_is_private(audit_log, filled):
    filled(1)
    assert audit_log.path.stat().st_mode & 0o077 == 0
    assert audit_log.checkpoint_path.stat().st_mode & 0o077 == 0


def test_tail_and_records_read_back(audit_log):
    for run in ("a", "b", "a", "c", "a"):
        audit_log.append(event(run_id=run))
    assert [r.seq for r in audit_log.tail(2)] == [4, 5]
    assert [r.seq for r in audit_log.tail(50)] == [1, 2, 3, 4, 5]
    assert [r.seq for r in audit_log.records("a")] == [1, 3, 5]
    assert len(audit_log.records()) == 5
    assert audit_log.records("nobody") == []


def test_tail_of_a_large_log_crosses_chunks(audit_log):
    audit_log._append_batch([event(arguments={"pad": "x" * 3000, "i": i}) for i in range(60)])
    assert [r.arguments["i"] for r in audit_log.tail(30)] == list(range(30, 60))


def test_reading_a_missing_log(tmp_path):
    log = AuditLog(tmp_path / "nope.jsonl", None)
    assert log.tail() == [] and log.records() == []


def test_event_rejects_unknown_fields_and_kinds():
    with pytest.raises(ValidationError):
        AuditEvent.model_validate({**event().model_dump(), "secret": "x"})
    with pytest.raises(ValidationError):
        AuditEvent.model_validate({**event().model_dump(), "kind": "whatever"})


def test_nested_keys_named_like_top_level_fields(audit_log):
    # "hash"/"seq" inside arguments must not confuse the verifier's byte slicing.
    audit_log.append(event(arguments={"hash": "x", "hmac": "y", "z": {"seq": 9}}, after={"seq": 1}))
    from console.audit import verify_log

    assert verify_log(audit_log.path, KEY, audit_log.checkpoint_path).ok


def test_fields_after_hmac_stay_scalars():
    # The verifier slices the authenticated tail of a line by `,"name":` markers; that is only
    # sound while every top-level field sorting after "hmac" is a scalar. A new field that
    # breaks this must come with a verifier change.
    from console.audit.records import _SCALAR_TAIL, AuditRecord

    tail = sorted(name for name in AuditRecord.model_fields if name > "hmac")
    assert tuple(tail) == _SCALAR_TAIL
    record = AuditRecord(
        **event().model_dump(), seq=1, time="2025-01-01T00:00:00Z", prev_hash="0", hash="", hmac=""
    ).model_dump(mode="json")
    assert all(not isinstance(record[name], dict | list) for name in tail)


def test_records_name_their_context_and_older_records_still_verify(audit_log, tmp_path):
    """A log from a context stamps the context's name on every record; records written before
    contexts existed (no ``context`` key) keep their bytes, and a log holding both verifies."""
    from console.audit.verify import verify_log

    old = audit_log.append(event("step-intent", step="s0"))
    assert b'"context"' not in lines(audit_log.path)[0] and old.context is None
    audit_log.context = "prod-eu"
    new = audit_log.append(event("step-outcome", step="s0"))
    assert new.context == "prod-eu"
    assert b'"context":"prod-eu"' in lines(audit_log.path)[1]
    report = verify_log(audit_log.path, KEY, audit_log.checkpoint_path)
    assert report.ok, report
    assert [r.context for r in audit_log.records("run-1")] == [None, "prod-eu"]
