"""Audit record models and their canonical bytes.

A stored line is the canonical JSON of an :class:`AuditRecord`. ``hash`` is the sha256 of the
canonical JSON of every field except ``hash`` and ``hmac``; ``hmac`` is HMAC-SHA256(key, hash).
Because keys are sorted and the only top-level keys starting with "h" are ``hash`` and ``hmac``,
the hashed bytes are exactly the stored line with the ``,"hash":"…","hmac":"…"`` segment cut
out, which lets the verifier hash raw bytes instead of re-serialising each record.
"""

from __future__ import annotations

import hashlib
import hmac as hmac_mod
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from console.audit.files import NotRegularFile, read_small

RecordKind = Literal[
    "run-intent",
    "run-outcome",
    "step-intent",
    "step-outcome",
    "compensate-intent",
    "compensate-outcome",
    "witness-reset",
    "approval-request",
    "approval-approve",
    "approval-deny",
    "approval-expire",
    "approval-use",
    "incident-open",
    "incident-note",
    "incident-close",
]
"""``witness-reset`` is written by ``audit reset-witness``: an operator moved the log's witness
to the log's own head (see :mod:`console.audit.witness`). The ``approval-*`` records follow a
run's approval request (``run_id`` is the run's); the ``incident-*`` records an incident's
opening, notes and closing (``run_id`` is the incident's id, ``runbook`` is ``incident``). They
are events, not intents: nothing waits for an outcome of them."""

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record."""

# Fields outside the hash: the hash itself and its HMAC.
UNHASHED = frozenset({"hash", "hmac"})


class AuditEvent(BaseModel):
    """What a caller hands to :meth:`AuditLog.append` (secrets already redacted)."""

    model_config = ConfigDict(extra="forbid")

    kind: RecordKind
    operator: str
    environment: str
    context: str | None = None
    """The console context that wrote it (``--context``); absent from records written before
    contexts existed, which keep their bytes and so their hash."""
    run_id: str
    runbook: str
    step: str | None = None
    action: str | None = None
    target: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    before: Any = None
    after: Any = None
    result: str | None = None
    """e.g. planned, ok, noop, failed, compensated, aborted."""
    error: str | None = None
    trace_id: str | None = None


class AuditRecord(AuditEvent):
    """What is stored: the event plus its place in the chain."""

    seq: int = Field(ge=1)
    """1-based, consecutive."""
    time: datetime
    """Aware UTC."""
    prev_hash: str
    """``hash`` of the previous record, :data:`GENESIS_HASH` for the first."""
    hash: str
    hmac: str

    @field_validator("time")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must be timezone-aware")
        return value.astimezone(UTC)


def canonical_json(data: Any) -> bytes:
    """The one serialisation that is hashed and stored (UTF-8, sorted keys, no spaces)."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hmac_hex(key: bytes, message: bytes) -> str:
    # hmac.digest is the one-shot C path: several times faster than hmac.new per record.
    return hmac_mod.digest(key, message, "sha256").hex()


def seal(body: dict[str, Any], key: bytes) -> tuple[dict[str, Any], bytes]:
    """Add ``hash`` and ``hmac`` to a JSON-mode record body; return it and its stored line."""
    digest = sha256_hex(canonical_json(body))
    full = {**body, "hash": digest, "hmac": hmac_hex(key, digest.encode("ascii"))}
    return full, canonical_json(full) + b"\n"


def record_body(record: AuditEvent, exclude: set[str] | None = None) -> dict[str, Any]:
    """A record's JSON fields as stored: without ``context`` when it has none."""
    left_out = set(exclude or ()) | ({"context"} if record.context is None else set())
    return record.model_dump(mode="json", exclude=left_out)


def record_line(record: AuditRecord) -> bytes:
    """The stored line of a record (with its trailing newline)."""
    return canonical_json(record_body(record)) + b"\n"


class BadRecord(ValueError):
    """A stored line (or the checkpoint) failed a check; ``str()`` says which."""


class LineFacts(NamedTuple):
    """What the verifier needs from one authenticated line.

    ``run_id`` and ``step`` are raw JSON tokens (``b'"r1"'``, ``b'null'``): they only serve
    as keys, and are decoded for the few records that end up in a report.
    """

    seq: int
    hash: str
    prev_hash: str
    kind: str
    run_id: bytes
    step: bytes


# Layout of a stored line: ...,"error":…,"hash":"<64 hex>","hmac":"<64 hex>","kind":"…",…}
# Every field sorting after "hmac" is a scalar (see _SCALAR_TAIL and its test), so inside that
# tail a `,"name":` marker can only be structural: within JSON strings every '"' is escaped.
_HASH_MARK = b',"hash":"'
_HMAC_MARK = b'","hmac":"'
_SEGMENT_LEN = len(_HASH_MARK) + 64 + len(_HMAC_MARK) + 64 + 1
_KIND_MARK = b'","kind":"'  # closes the hmac value, opens kind
_SCALAR_TAIL = (
    "kind",
    "operator",
    "prev_hash",
    "result",
    "run_id",
    "runbook",
    "seq",
    "step",
    "target",
    "time",
    "trace_id",
)
"""Top-level fields after hmac in sorted order: they must stay scalars."""


class RecordChecker:
    """Checks stored lines against one key (the HMAC state is prepared once)."""

    def __init__(self, key: bytes) -> None:
        self._mac = hmac_mod.new(key, digestmod="sha256")

    def mac_hex(self, message: bytes) -> str:
        mac = self._mac.copy()
        mac.update(message)
        return mac.hexdigest()

    def check(self, line: bytes) -> LineFacts:
        """Check one stored line (newline stripped); raise :class:`BadRecord` if it fails.

        Hashes the raw bytes minus the hash/hmac segment instead of parsing and re-serialising
        the record: any byte changed anywhere fails, and no JSON is decoded on this path.
        """
        start = line.rfind(_HASH_MARK)
        end = start + _SEGMENT_LEN
        if (
            start < 0
            or line[start + 73 : start + 83] != _HMAC_MARK
            or line[end - 1 : end + 9] != _KIND_MARK
        ):
            raise BadRecord("not a stored record (damaged or partial line)")
        digest = line[start + 9 : start + 73]
        if sha256_hex(line[:start] + line[end:]).encode() != digest:
            raise BadRecord("record modified (hash mismatch)")
        if not hmac_mod.compare_digest(self.mac_hex(digest).encode(), line[start + 83 : end - 1]):
            raise BadRecord("HMAC mismatch (forged record, or the wrong key)")
        # Authenticated from here on: the bytes are the writer's, and the tail holds exactly
        # the _SCALAR_TAIL fields in order, so each value runs up to the next field's marker.
        try:
            kind_end = line.index(b'"', end + 9)
            prev_at = line.index(b',"prev_hash":"', kind_end) + 14
            run_at = line.index(b',"run_id":', prev_at) + 10
            runbook_at = line.index(b',"runbook":', run_at)
            seq_at = line.index(b',"seq":', runbook_at) + 7
            step_at = line.index(b',"step":', seq_at)
            # Positional: keyword construction costs a measurable share of the hot loop.
            return LineFacts(
                int(line[seq_at:step_at]),
                digest.decode(),
                line[prev_at : prev_at + 64].decode(),
                line[end + 9 : kind_end].decode(),
                line[run_at:runbook_at],
                line[step_at + 8 : line.index(b',"target":', step_at)],
            )
        except ValueError:
            raise BadRecord("record is missing seq/prev_hash/run_id/step") from None


def open_line(line: bytes, key: bytes) -> LineFacts:
    """Check one stored line with ``key``; see :meth:`RecordChecker.check`."""
    return RecordChecker(key).check(line)


@dataclass(frozen=True)
class Checkpoint:
    """Authenticated head of the log: how many records, and the last one's hash."""

    count: int
    head: str
    time: str

    def to_bytes(self, key: bytes) -> bytes:
        body = {"version": 1, "count": self.count, "head": self.head, "time": self.time}
        return canonical_json({**body, "hmac": hmac_hex(key, canonical_json(body))}) + b"\n"

    @classmethod
    def genesis(cls) -> Checkpoint:
        return cls(count=0, head=GENESIS_HASH, time="")

    @classmethod
    def now(cls, count: int, head: str) -> Checkpoint:
        return cls(count=count, head=head, time=datetime.now(UTC).isoformat())


def load_signed(path: Path, key: bytes, what: str) -> dict[str, Any] | None:
    """The HMAC'd JSON object in the small file ``path`` (a checkpoint, a witness) without
    its ``hmac``; None if there is no file; BadRecord if it is not one or does not check out.

    OSError other than "not found" propagates: the caller decides how to report it.
    """
    try:
        raw = read_small(path)
    except NotRegularFile as exc:
        raise BadRecord(f"{what} {exc}") from None
    except ValueError:
        raise BadRecord(f"{what} {path} is damaged (not a {what})") from None
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        mac = data.pop("hmac")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadRecord(f"{what} {path} is damaged (not a {what})") from None
    if not isinstance(mac, str) or not hmac_mod.compare_digest(
        hmac_hex(key, canonical_json(data)), mac
    ):
        raise BadRecord(f"{what} {path} does not match its HMAC (modified, or the wrong key)")
    return dict(data)


def load_checkpoint(path: Path, key: bytes) -> Checkpoint | None:
    """The checkpoint at ``path``, None if there is none; BadRecord if it does not check out."""
    data = load_signed(path, key, "checkpoint")
    if data is None:
        return None
    count, head, stamp = data.get("count"), data.get("head"), data.get("time", "")
    if type(count) is not int or count < 0 or not isinstance(head, str):
        raise BadRecord(f"checkpoint {path} is damaged (bad count/head)")
    return Checkpoint(count=count, head=head, time=str(stamp))


__all__ = [
    "GENESIS_HASH",
    "AuditEvent",
    "AuditRecord",
    "BadRecord",
    "Checkpoint",
    "LineFacts",
    "RecordChecker",
    "RecordKind",
    "canonical_json",
    "hmac_hex",
    "load_checkpoint",
    "load_signed",
    "open_line",
    "record_body",
    "record_line",
    "seal",
    "sha256_hex",
]
