"""Where an append starts: the log's head, cross-checked with its checkpoint and its witness.

Both run under the writer's lock, before anything is written: a log whose last line, checkpoint
and witness do not agree is not appended to (``verify`` says what is wrong with it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from console.audit.files import reason
from console.audit.records import (
    GENESIS_HASH,
    BadRecord,
    Checkpoint,
    LineFacts,
    RecordChecker,
    load_checkpoint,
)
from console.audit.witness import RESET_HINT, Witness, belongs_to, compare, load_witness
from console.errors import AuditWriteError

MAX_ROLL_FORWARD = 10_000
"""Records past the checkpoint an append accepts (a crash between line and checkpoint)."""

VERIFY_HINT = "run `aml-console audit verify`"


@dataclass(frozen=True)
class Head:
    count: int
    hash: str
    size: int


def read_head(fd: int, log: Path, checkpoint_path: Path, key: bytes) -> Head:
    """The log's head from its checkpoint, cross-checked with its last line."""
    size = os.fstat(fd).st_size
    try:
        cp = load_checkpoint(checkpoint_path, key)
    except BadRecord as exc:
        raise AuditWriteError(f"{exc}; refusing to append: {VERIFY_HINT}") from None
    except OSError as exc:
        raise AuditWriteError(
            f"cannot read audit checkpoint {checkpoint_path}: {reason(exc)}"
        ) from None
    if size == 0:
        if cp is None or cp.count == 0:
            return Head(0, GENESIS_HASH, 0)
        raise AuditWriteError(
            f"audit log {log} is empty but its checkpoint holds {cp.count} records: "
            f"refusing to append: {VERIFY_HINT}"
        )
    if os.pread(fd, 1, size - 1) != b"\n":
        raise AuditWriteError(
            f"audit log {log} ends with a partial record: refusing to append: {VERIFY_HINT}"
        )
    if cp is None:
        raise AuditWriteError(
            f"audit log {log} has records but no checkpoint ({checkpoint_path}): "
            f"refusing to append: {VERIFY_HINT}"
        )
    last = _checked(tail_lines(fd, size, 1), log, key)[-1]
    if last.seq == cp.count and last.hash == cp.head:
        return Head(cp.count, cp.head, size)
    if cp.count < last.seq <= cp.count + MAX_ROLL_FORWARD:
        # A crash between the line's fsync and the checkpoint: accept the authenticated
        # records past the checkpoint if they chain from its head.
        extra = last.seq - cp.count + (1 if cp.count else 0)
        chain = _checked(tail_lines(fd, size, extra), log, key)
        if _chains_from(chain, cp):
            return Head(last.seq, last.hash, size)
    raise AuditWriteError(
        f"audit checkpoint ({cp.count} records) disagrees with the last record of "
        f"{log} (seq {last.seq}): refusing to append: {VERIFY_HINT}"
    )


def check_witness(fd: int, head: Head, log: Path, witness_path: Path, key: bytes) -> Witness | None:
    """The log's witness (None if it has none yet); AuditWriteError unless the log holds its
    head, which also refuses a fresh chain where the witness knows one."""
    try:
        witness = load_witness(witness_path, key)
    except BadRecord as exc:
        raise AuditWriteError(f"{exc}: refusing to append; {RESET_HINT}") from None
    except OSError as exc:
        raise AuditWriteError(f"cannot read audit witness {witness_path}: {reason(exc)}") from None
    if witness is None:
        return None
    if head.count == 0 and witness.count > 0 and belongs_to(witness, log):
        raise AuditWriteError(
            f"audit log {log} would start a new chain, but its witness {witness_path} records "
            f"{witness.count} records (log deleted or replaced?): refusing to append; "
            f"{RESET_HINT}"
        )
    at_count = _hash_at(fd, head, witness.count, key)
    problem = compare(witness, witness_path, log, head.count, at_count)
    if problem is not None:
        raise AuditWriteError(f"audit log {log}: {problem}: refusing to append; {RESET_HINT}")
    return witness


def _hash_at(fd: int, head: Head, seq: int, key: bytes) -> str | None:
    """Hash of record ``seq`` (at most ``head.count``), read back from the end of the log."""
    if seq == head.count:
        return head.hash
    if seq <= 0 or seq > head.count:
        return None
    lines = tail_lines(fd, head.size, head.count - seq + 1)
    try:
        facts = RecordChecker(key).check(lines[0]) if lines else None
    except BadRecord:
        return None
    return facts.hash if facts is not None and facts.seq == seq else None


def _checked(lines: list[bytes], log: Path, key: bytes) -> list[LineFacts]:
    checker = RecordChecker(key)
    try:
        return [checker.check(line) for line in lines]
    except BadRecord as exc:
        raise AuditWriteError(
            f"last records of {log} do not check out ({exc}): refusing to append: {VERIFY_HINT}"
        ) from None


def tail_lines(fd: int, size: int, n: int, chunk: int = 65536) -> list[bytes]:
    """The last ``n`` newline-terminated lines before ``size``, without their newlines.

    Bytes after the last newline (a torn line) are ignored.
    """
    end = size
    buf = b""
    while end > 0:
        start = max(0, end - chunk)
        buf = os.pread(fd, end - start, start) + buf
        end = start
        if buf.count(b"\n") > n:
            break
    cut = buf.rfind(b"\n") + 1
    lines = buf[:cut].split(b"\n")[:-1]
    if end > 0:  # the first piece may be the tail of an earlier line
        lines = lines[1:]
    return lines[-n:]


def _chains_from(chain: list[LineFacts], cp: Checkpoint) -> bool:
    prev, seq = cp.head, cp.count
    if cp.count:
        first, chain = chain[0], chain[1:]
        if first.seq != cp.count or first.hash != cp.head:
            return False
    for facts in chain:
        seq += 1
        if facts.seq != seq or facts.prev_hash != prev:
            return False
        prev = facts.hash
    return True


__all__ = [
    "MAX_ROLL_FORWARD",
    "VERIFY_HINT",
    "Head",
    "check_witness",
    "read_head",
    "tail_lines",
]
