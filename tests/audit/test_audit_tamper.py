"""Every way to tamper with a real log written through AuditLog is caught and located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_helpers import KEY, event, lines, write_lines

from console.audit import AuditLog, verify_log
from console.audit.records import canonical_json, seal, sha256_hex
from console.errors import AuditError


def check(log: AuditLog, key: bytes = KEY):
    return verify_log(log.path, key, log.checkpoint_path)


def test_clean_log_verifies(audit_log, filled):
    filled(10)
    report = check(audit_log)
    assert report.ok, report.problem
    assert report.records == 10
    assert report.outcome_unknown == []
    assert report.first_bad_line is None


def test_every_single_flipped_byte_in_a_middle_record_is_caught(audit_log, filled):
    filled(10)
    original = lines(audit_log.path)
    middle = original[4]  # seq 5
    for offset in range(len(middle)):
        damaged = bytearray(middle)
        damaged[offset] ^= 0x01
        write_lines(audit_log.path, [*original[:4], bytes(damaged), *original[5:]])
        report = check(audit_log)
        assert not report.ok, f"flip at byte {offset} not detected"
        assert report.first_bad_line == 5, (offset, report.problem)
    write_lines(audit_log.path, original)
    assert check(audit_log).ok


def test_modified_field_is_named(audit_log, filled):
    filled(10)
    items = lines(audit_log.path)
    items[2] = items[2].replace(b'"alice"', b'"mallory"')
    write_lines(audit_log.path, items)
    report = check(audit_log)
    assert (report.ok, report.first_bad_line, report.first_bad_seq) == (False, 3, 3)
    assert "modified" in (report.problem or "")


def test_deleted_record(audit_log, filled):
    filled(10)
    items = lines(audit_log.path)
    del items[4]
    write_lines(audit_log.path, items)
    report = check(audit_log)
    assert (report.ok, report.first_bad_line, report.first_bad_seq) == (False, 5, 6)
    assert "missing" in (report.problem or "")
    assert report.records == 9  # lines after the first bad one are still counted


def test_inserted_record_forged_with_another_key(audit_log, filled):
    records = filled(10)
    # A well-formed record that fits the chain (seq, prev_hash, correct sha256), but sealed
    # with a key that is not the log's.
    body = records[3].model_dump(mode="json", exclude={"hash", "hmac"})
    body.update(seq=5, prev_hash=records[3].hash, target="attacker")
    _, forged = seal(body, b"not-the-key")
    items = lines(audit_log.path)
    items.insert(4, forged)
    write_lines(audit_log.path, items)
    report = check(audit_log)
    assert (report.ok, report.first_bad_line, report.first_bad_seq) == (False, 5, 5)
    assert "HMAC" in (report.problem or "")


def test_inserted_record_with_valid_looking_hash_and_copied_hmac(audit_log, filled):
    records = filled(10)
    body = records[4].model_dump(mode="json", exclude={"hash", "hmac"})
    body["result"] = "noop"
    digest = sha256_hex(canonical_json(body))  # a hash that matches the forged body
    forged = canonical_json({**body, "hash": digest, "hmac": records[4].hmac}) + b"\n"
    items = lines(audit_log.path)
    items[4] = forged
    write_lines(audit_log.path, items)
    report = check(audit_log)
    assert (report.ok, report.first_bad_line, report.first_bad_seq) == (False, 5, 5)
    assert "HMAC" in (report.problem or "")


def test_duplicated_record(audit_log, filled):
    filled(10)
    items = lines(audit_log.path)
    items.insert(5, items[4])
    write_lines(audit_log.path, items)
    report = check(audit_log)
    assert (report.ok, report.first_bad_line, report.first_bad_seq) == (False, 6, 5)
    assert "duplicated" in (report.problem or "")


def test_reordered_records(audit_log, filled):
    filled(10)
    items = lines(audit_log.path)
    items[3], items[4] = items[4], items[3]
    write_lines(audit_log.path, items)
    report = check(audit_log)
    assert (report.ok, report.first_bad_line, report.first_bad_seq) == (False, 4, 5)


def test_torn_last_line(audit_log, filled):
    filled(10)
    data = audit_log.path.read_bytes()
    audit_log.path.write_bytes(data[: len(data) - 100])
    report = check(audit_log)
    assert (report.ok, report.first_bad_line, report.first_bad_seq) == (False, 10, 10)
    assert "torn" in (report.problem or "")


@pytest.mark.parametrize("removed", [1, 3, 10])
def test_last_records_removed_is_caught_by_the_checkpoint(audit_log, filled, removed):
    filled(10)
    items = lines(audit_log.path)
    write_lines(audit_log.path, items[: 10 - removed])
    report = check(audit_log)
    assert not report.ok
    assert report.first_bad_line == report.first_bad_seq == 11 - removed
    assert f"last {removed} record(s) were removed" in (report.problem or "")


def test_the_chain_alone_does_not_see_truncation(audit_log, filled):
    # Why the checkpoint exists: without it, a cut-off tail looks like a shorter valid log.
    filled(10)
    write_lines(audit_log.path, lines(audit_log.path)[:7])
    report = verify_log(audit_log.path, KEY, None)
    assert report.ok and report.records == 7
    assert any("not checked" in w for w in report.warnings)


def test_modified_checkpoint(audit_log, filled):
    filled(10)
    data = json.loads(audit_log.checkpoint_path.read_bytes())
    data["count"] = 7
    audit_log.checkpoint_path.write_bytes(canonical_json(data) + b"\n")
    report = check(audit_log)
    assert not report.ok
    assert "checkpoint" in (report.problem or "") and "HMAC" in (report.problem or "")


def test_deleted_checkpoint(audit_log, filled):
    filled(4)
    audit_log.checkpoint_path.unlink()
    report = check(audit_log)
    assert not report.ok and "missing" in (report.problem or "")


def test_checkpoint_of_another_log(audit_log, filled, tmp_path):
    filled(4)
    other = AuditLog(tmp_path / "other.jsonl", KEY)
    for _ in range(4):
        other.append(event(run_id="other"))
    audit_log.checkpoint_path.write_bytes(other.checkpoint_path.read_bytes())
    report = check(audit_log)
    assert not report.ok and "head does not match" in (report.problem or "")


def test_emptied_log(audit_log, filled):
    filled(4)
    audit_log.path.write_bytes(b"")
    report = check(audit_log)
    assert not report.ok and report.first_bad_line == 1


def test_deleted_log_with_checkpoint(audit_log, filled):
    filled(4)
    audit_log.path.unlink()
    report = check(audit_log)
    assert not report.ok and "missing" in (report.problem or "")


def test_wrong_key(audit_log, filled):
    filled(4)
    report = check(audit_log, key=b"some-other-key")
    assert (report.ok, report.first_bad_line, report.first_bad_seq) == (False, 1, 1)
    assert "key" in (report.problem or "")


def test_missing_key_is_an_error(audit_log, filled):
    filled(2)
    with pytest.raises(AuditError, match="no audit HMAC key"):
        verify_log(audit_log.path, b"", audit_log.checkpoint_path)


def test_no_log_at_all_is_an_error(tmp_path: Path):
    with pytest.raises(AuditError, match="no audit log"):
        verify_log(tmp_path / "none.jsonl", KEY, tmp_path / "none.jsonl.head")


def test_outcome_unknown_is_a_warning_not_corruption(audit_log):
    audit_log.append(event("run-intent", step=None))
    audit_log.append(event("step-intent", step="block"))
    audit_log.append(event("step-outcome", step="block"))
    audit_log.append(event("step-intent", step="expire"))  # crash here: no outcome
    report = check(audit_log)
    assert report.ok and report.problem is None
    pending = [(i["kind"], i["run_id"], i["step"], i["seq"]) for i in report.outcome_unknown]
    assert pending == [("run-intent", "run-1", "", "1"), ("step-intent", "run-1", "expire", "4")]
    assert any("outcome unknown" in w and "expire" in w for w in report.warnings)


def test_report_to_dict(audit_log, filled):
    filled(2)
    data = check(audit_log).to_dict()
    assert data["path"] == str(audit_log.path)
    assert data["records"] == 2 and data["ok"] is True
    json.dumps(data)
