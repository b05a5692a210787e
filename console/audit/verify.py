"""Check an audit log end to end: every record's hash and HMAC, the chain, and the checkpoint.

The chain catches a record modified, deleted, inserted, duplicated or reordered; the
checkpoint (count + head hash, HMAC'd, kept apart from the log) catches the last records cut
off, which a chain alone cannot see. Intents without outcomes are warnings, not corruption:
they are what a crash mid-step leaves behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from console.audit.records import (
    GENESIS_HASH,
    BadRecord,
    Checkpoint,
    LineFacts,
    RecordChecker,
    load_checkpoint,
)
from console.errors import AuditError

_SEQ_MARK = b',"seq":'


@dataclass
class VerifyReport:
    """Result of :func:`verify_log`. ``first_bad_seq`` is the seq the bad line holds, or the
    one it should hold when the line is unreadable."""

    path: Path
    records: int
    ok: bool
    first_bad_line: int | None = None
    first_bad_seq: int | None = None
    problem: str | None = None
    outcome_unknown: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checkpoint_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["checkpoint_path"] = str(self.checkpoint_path) if self.checkpoint_path else None
        return data

    def summary(self) -> str:
        """One line for people."""
        if self.ok:
            return f"audit log {self.path}: OK, {self.records} records"
        where = ""
        if self.first_bad_line is not None:
            where = f" at line {self.first_bad_line} (seq {self.first_bad_seq})"
        return f"audit log {self.path}: FAILED{where}: {self.problem}"


class _Failed(Exception):
    def __init__(self, line: int | None, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.line, self.seq, self.problem = line, seq, problem


def verify_log(path: Path, key: bytes, checkpoint_path: Path | None) -> VerifyReport:
    """Verify ``path``. ``checkpoint_path=None`` skips the truncation check (with a warning).

    Raises AuditError when there is nothing to verify (no key, no log and no checkpoint).
    """
    if not key:
        raise AuditError(
            "no audit HMAC key configured (set CONSOLE_AUDIT__HMAC_KEY or audit.hmac_key_file): "
            "cannot verify the audit log"
        )
    path = Path(path)
    report = VerifyReport(path=path, records=0, ok=False, checkpoint_path=checkpoint_path)
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        cp, cp_error = _load(checkpoint_path, key)
        if cp is None and cp_error is None:
            raise AuditError(f"no audit log at {path}") from None
        held = cp.count if cp is not None else 0
        report.problem = cp_error or f"the log is missing but its checkpoint holds {held} records"
        return report
    except OSError as exc:
        raise AuditError(f"cannot read audit log {path}: {exc.strerror or exc}") from None
    with fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise AuditError(f"audit log {path} is not a regular file")
        # Snapshot size and checkpoint under a shared lock: writers hold it exclusively from
        # line to checkpoint, so the snapshot falls on a record boundary and the two agree.
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        try:
            size = os.fstat(fh.fileno()).st_size
            cp, cp_error = _load(checkpoint_path, key)
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        want_seq = cp.count if cp is not None else -1
        try:
            report.records, cp_hash, open_intents = _walk(_lines(fh, size), key, want_seq)
        except _Failed as bad:
            report.records = bad.line or 0
            report.records += sum(1 for _ in _lines(fh, size))  # the rest, unchecked
            report.first_bad_line, report.first_bad_seq = bad.line, bad.seq
            report.problem = bad.problem
            return report
    report.outcome_unknown = open_intents
    for item in open_intents:
        step = f" step {item['step']}" if item["step"] else ""
        report.warnings.append(
            f"outcome unknown: run {item['run_id']}{step} ({item['kind']} at seq {item['seq']} "
            "has no outcome record; crashed mid-step, or still running)"
        )
    report.problem = _check_checkpoint(report, cp, cp_error, cp_hash, checkpoint_path)
    report.ok = report.problem is None
    return report


def _load(checkpoint_path: Path | None, key: bytes) -> tuple[Checkpoint | None, str | None]:
    if checkpoint_path is None:
        return None, None
    try:
        return load_checkpoint(checkpoint_path, key), None
    except BadRecord as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read checkpoint {checkpoint_path}: {exc.strerror or exc}"


def _lines(fh: BinaryIO, size: int) -> Iterator[bytes]:
    """Lines of the first ``size`` bytes (later appends are not part of this verification)."""
    pos = fh.tell()
    for raw in fh:
        if pos >= size:
            return
        if pos + len(raw) > size:
            raw = raw[: size - pos]
        pos += len(raw)
        yield raw


# kind -> (family, is_intent); an outcome closes the oldest-open intent of its family.
_KINDS = {
    f"{family}-{phase}": (family, phase == "intent")
    for family in ("run", "step", "compensate")
    for phase in ("intent", "outcome")
}
_Slot = tuple[str, bytes, bytes]


def _walk(
    lines: Iterator[bytes], key: bytes, want_seq: int
) -> tuple[int, str | None, list[dict[str, str]]]:
    """Check every line; return (count, hash of record ``want_seq``, open intents)."""
    check = RecordChecker(key).check
    prev, expected = GENESIS_HASH, 1
    want_hash = GENESIS_HASH if want_seq == 0 else None
    open_intents: dict[_Slot, list[tuple[int, int, LineFacts]]] = {}
    for number, raw in enumerate(lines, 1):
        if not raw.endswith(b"\n"):
            raise _Failed(number, _seq_of(raw, expected), "the last record is torn (partial line)")
        try:
            facts = check(raw[:-1])
        except BadRecord as exc:
            raise _Failed(number, _seq_of(raw, expected), str(exc)) from None
        seq = facts.seq
        if seq != expected:
            how = "records missing or reordered" if seq > expected else "duplicated or reordered"
            raise _Failed(number, seq, f"seq {seq} where {expected} was expected ({how})")
        if facts.prev_hash != prev:
            raise _Failed(number, seq, "chain broken: prev_hash is not the previous record's hash")
        prev = facts.hash
        if seq == want_seq:
            want_hash = prev
        expected += 1
        family, is_intent = _KINDS.get(facts.kind, ("", False))
        slot = (family, facts.run_id, facts.step)
        if is_intent:
            open_intents.setdefault(slot, []).append((seq, number, facts))
        elif family and open_intents.get(slot):
            open_intents[slot].pop()
    pending = sorted(item for items in open_intents.values() for item in items)
    return expected - 1, want_hash, [_intent_dict(*item) for item in pending]


def _intent_dict(seq: int, line: int, facts: LineFacts) -> dict[str, str]:
    run_id, step = json.loads(facts.run_id), json.loads(facts.step)
    return {
        "run_id": str(run_id),
        "step": "" if step is None else str(step),
        "kind": facts.kind,
        "seq": str(seq),
        "line": str(line),
    }


def _check_checkpoint(
    report: VerifyReport,
    cp: Checkpoint | None,
    cp_error: str | None,
    cp_hash: str | None,
    checkpoint_path: Path | None,
) -> str | None:
    if checkpoint_path is None:
        report.warnings.append("no checkpoint given: removal of the last records not checked")
        return None
    if cp_error is not None:
        return cp_error
    if cp is None:
        if report.records == 0:
            return None
        return (
            f"checkpoint {checkpoint_path} is missing: the removal of the last records "
            "cannot be ruled out"
        )
    if cp.count > report.records:
        report.first_bad_line = report.first_bad_seq = report.records + 1
        return (
            f"the last {cp.count - report.records} record(s) were removed: the checkpoint "
            f"holds {cp.count} records, the log {report.records}"
        )
    if cp_hash != cp.head:
        report.first_bad_line = report.first_bad_seq = cp.count or None
        return f"the checkpoint's head does not match record seq {cp.count}"
    if cp.count < report.records:
        report.warnings.append(
            f"checkpoint is {report.records - cp.count} record(s) behind the log (a crash "
            "between a write and its checkpoint); the next append brings it up to date"
        )
    return None


def _seq_of(line: bytes, fallback: int) -> int:
    # seq comes after hmac in the sorted keys, where every value is a scalar: the last
    # occurrence is the top-level one.
    at = line.rfind(_SEQ_MARK)
    if at >= 0:
        digits = line[at + len(_SEQ_MARK) : at + len(_SEQ_MARK) + 20].split(b",")[0]
        if digits.isdigit():
            return int(digits)
    return fallback


__all__ = ["VerifyReport", "verify_log"]
