"""Check an audit log end to end: every record's hash and HMAC, the chain, the checkpoint and
the witness.

The chain catches a record modified, deleted, inserted, duplicated or reordered; the
checkpoint (count + head hash, HMAC'd, kept beside the log) catches the last records cut off,
which a chain alone cannot see; the witness (the same head, kept away from the log's directory)
catches the log rolled back together with its checkpoint, or deleted with it. Intents without
outcomes are warnings, not corruption: they are what a crash mid-step leaves behind.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from console.audit.files import NotRegularFile, open_regular
from console.audit.records import (
    GENESIS_HASH,
    BadRecord,
    Checkpoint,
    LineFacts,
    RecordChecker,
    load_checkpoint,
)
from console.audit.witness import Witness, compare, load_witness
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
    witness_path: Path | None = None
    witness_records: int | None = None
    """How many records the witness vouches for (None: no witness)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["checkpoint_path"] = str(self.checkpoint_path) if self.checkpoint_path else None
        data["witness_path"] = str(self.witness_path) if self.witness_path else None
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


def verify_log(
    path: Path, key: bytes, checkpoint_path: Path | None, witness_path: Path | None = None
) -> VerifyReport:
    """Verify ``path``. ``checkpoint_path=None`` skips the truncation check (with a warning);
    ``witness_path=None`` skips the rollback check against the witness.

    Raises AuditError when there is nothing to verify (no key; no log, checkpoint or witness;
    a log path that is not a regular file).
    """
    if not key:
        raise AuditError(
            "no audit HMAC key configured (set CONSOLE_AUDIT__HMAC_KEY or audit.hmac_key_file): "
            "cannot verify the audit log"
        )
    path = Path(path)
    report = VerifyReport(
        path=path, records=0, ok=False, checkpoint_path=checkpoint_path, witness_path=witness_path
    )
    try:
        # lstat first, then a non-blocking open: a FIFO would block the open until a writer came.
        fh = os.fdopen(open_regular(path), "rb")
    except FileNotFoundError:
        return _missing_log(report, key)
    except NotRegularFile as exc:
        raise AuditError(f"audit log {exc}") from None
    except OSError as exc:
        raise AuditError(f"cannot read audit log {path}: {exc.strerror or exc}") from None
    with fh:
        # Snapshot size, checkpoint and witness under a shared lock: writers hold it exclusively
        # from line to witness, so the snapshot falls on a record boundary and the three agree.
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        try:
            size = os.fstat(fh.fileno()).st_size
            cp, cp_error = _load(checkpoint_path, key)
            witness, witness_error = _load_witness(witness_path, key)
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        wanted = {cp.count if cp else -1, witness.count if witness else -1}
        try:
            report.records, hashes, open_intents = _walk(_lines(fh, size), key, wanted)
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
    report.problem = _check_witness(report, witness, witness_error, hashes) or _check_checkpoint(
        report, cp, cp_error, hashes.get(cp.count) if cp else None, checkpoint_path
    )
    report.ok = report.problem is None
    return report


def _missing_log(report: VerifyReport, key: bytes) -> VerifyReport:
    cp, cp_error = _load(report.checkpoint_path, key)
    witness, witness_error = _load_witness(report.witness_path, key)
    if witness is not None:
        report.witness_records = witness.count
    if witness is not None and witness.count > 0:
        report.problem = (
            f"log missing but witness records {witness.count} records "
            f"(witness {report.witness_path})"
        )
    elif cp is None and cp_error is None and witness_error is None:
        raise AuditError(f"no audit log at {report.path}")
    else:
        held = cp.count if cp is not None else 0
        missing = f"the log is missing but its checkpoint holds {held} records"
        report.problem = witness_error or cp_error or missing
    return report


def _load_witness(witness_path: Path | None, key: bytes) -> tuple[Witness | None, str | None]:
    if witness_path is None:
        return None, None
    try:
        return load_witness(witness_path, key), None
    except BadRecord as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read witness {witness_path}: {exc.strerror or exc}"


def _check_witness(
    report: VerifyReport, witness: Witness | None, error: str | None, hashes: dict[int, str]
) -> str | None:
    path = report.witness_path
    if path is None:
        return None
    if error is not None:
        return error
    if witness is None:
        if report.records:
            report.warnings.append(
                f"no witness at {path}: a rollback of log and checkpoint together cannot be "
                "ruled out (the next append writes the witness)"
            )
        return None
    report.witness_records = witness.count
    problem = compare(witness, path, report.path, report.records, hashes.get(witness.count))
    if problem is not None:
        at = witness.count if witness.count <= report.records else report.records + 1
        report.first_bad_line = report.first_bad_seq = at or None
        return problem
    if witness.count < report.records:
        report.warnings.append(
            f"witness is {report.records - witness.count} record(s) behind the log (a crash "
            "between a write and its witness); the next append brings it up to date"
        )
    return None


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


# kind -> (family, is_intent). An outcome answers every open intent of its family, run and
# step: a resumed run writes a new run intent and re-plans the step its crash left open, so
# the one outcome that follows answers both. A compensation's outcome also answers the step it
# undid (an abort undoes the step a crash left open instead of finishing it).
_KINDS = {
    f"{family}-{phase}": (family, phase == "intent")
    for family in ("run", "step", "compensate")
    for phase in ("intent", "outcome")
}
_Slot = tuple[str, bytes, bytes]


def _walk(
    lines: Iterator[bytes], key: bytes, wanted: set[int]
) -> tuple[int, dict[int, str], list[dict[str, str]]]:
    """Check every line; return (count, hashes of the ``wanted`` seqs, open intents)."""
    check = RecordChecker(key).check
    prev, expected = GENESIS_HASH, 1
    hashes = {0: GENESIS_HASH}
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
        if seq in wanted:
            hashes[seq] = prev
        expected += 1
        family, is_intent = _KINDS.get(facts.kind, ("", False))
        slot = (family, facts.run_id, facts.step)
        if is_intent:
            open_intents.setdefault(slot, []).append((seq, number, facts))
        elif family:
            open_intents.pop(slot, None)
            if family == "compensate":
                open_intents.pop(("step", facts.run_id, facts.step), None)
    pending = sorted(item for items in open_intents.values() for item in items)
    return expected - 1, hashes, [_intent_dict(*item) for item in pending]


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
