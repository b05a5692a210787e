"""The log's witness: its signed head kept a second time, away from the log's directory.

The checkpoint beside the log catches records cut off its end, but whoever can write the log's
directory can also put back an older checkpoint with the log cut to match it, or delete both
and let the next run start a fresh chain. The witness holds the same count and head hash,
HMAC'd with the audit key, in a file elsewhere: by default
``$XDG_STATE_HOME/aml-console/witness/<log name>-<hash of its absolute path>.witness``
(``~/.local/state`` without XDG_STATE_HOME), or ``audit.witness_path``. Every append replaces
it atomically after the checkpoint, and never with a smaller count, so it may trail the log by
one append after a crash but is never ahead of it. A log that does not hold the witnessed head
(fewer records, or another record at that position) fails ``verify``, and the writer refuses
to append to it, or to start a fresh chain where the witness knows a head, until an operator
runs ``audit reset-witness --yes``, which writes its own record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from console.audit.files import replace_file
from console.audit.records import BadRecord, canonical_json, hmac_hex, load_signed, sha256_hex
from console.errors import ConfigError
from console.locations import state_home

if TYPE_CHECKING:
    from console.config import Settings

RESET_HINT = "if the log was reset on purpose, run `aml-console audit reset-witness --yes`"
_MAGIC = "aml-audit-witness"


@dataclass(frozen=True)
class Witness:
    """The head of one log as its writer last committed it."""

    count: int
    head: str
    log: str
    """The log's absolute path (:func:`log_identity`)."""
    time: str

    def to_bytes(self, key: bytes) -> bytes:
        body = {
            "kind": _MAGIC,
            "version": 1,
            "count": self.count,
            "head": self.head,
            "log": self.log,
            "time": self.time,
        }
        return canonical_json({**body, "hmac": hmac_hex(key, canonical_json(body))}) + b"\n"

    @classmethod
    def now(cls, count: int, head: str, log: Path) -> Witness:
        return cls(count, head, log_identity(log), datetime.now(UTC).isoformat())

    def describe(self) -> dict[str, object]:
        return {"count": self.count, "head": self.head, "time": self.time}


def log_identity(log: Path) -> str:
    """Absolute, not resolved: a log directory swapped for a symlink is another log."""
    return os.path.abspath(log)


def belongs_to(witness: Witness, log: Path) -> bool:
    if witness.log == log_identity(log):
        return True
    try:
        return Path(witness.log).resolve() == Path(log).resolve()
    except OSError:
        return False


def default_witness_path(log: Path) -> Path:
    """Where the witness of ``log`` lives unless configured: one file per log path.

    ConfigError when there is no state directory to put it in."""
    identity = log_identity(log)
    digest = sha256_hex(identity.encode("utf-8", "surrogateescape"))[:16]
    try:
        home = state_home()
    except ConfigError:
        raise ConfigError(
            "no home directory for the audit witness: set XDG_STATE_HOME or audit.witness_path"
        ) from None
    return home / "aml-console" / "witness" / f"{Path(identity).name}-{digest}.witness"


def witness_path_for(settings: Settings, other_log: Path | None = None) -> Path | None:
    """The configured log's witness, or the default one of ``other_log``; None when
    ``audit.witness = "none"``."""
    if settings.audit.witness == "none":
        return None
    if other_log is not None:
        return default_witness_path(other_log)
    return settings.audit.witness_path or default_witness_path(settings.audit_path)


def load_witness(path: Path, key: bytes) -> Witness | None:
    """The witness at ``path``, None if there is none; BadRecord if it does not check out.

    OSError other than "not found" propagates.
    """
    data = load_signed(path, key, "witness")
    if data is None:
        return None
    magic, count, head, log = data.get("kind"), data.get("count"), data.get("head"), data.get("log")
    if (
        magic != _MAGIC
        or type(count) is not int
        or count < 0
        or not isinstance(head, str)
        or not isinstance(log, str)
    ):
        raise BadRecord(f"witness {path} is damaged (bad count/head)")
    return Witness(count=count, head=head, log=log, time=str(data.get("time", "")))


def store_witness(path: Path, witness: Witness, key: bytes) -> None:
    """Replace the witness atomically (OSError propagates).

    The data is fsynced, the directory is not: a rename lost in a power cut leaves the older
    witness, which trails the log (allowed) and is never ahead of it.
    """
    replace_file(path, witness.to_bytes(key), sync_dir=False)


def compare(
    witness: Witness, path: Path, log: Path, records: int, hash_at_count: str | None
) -> str | None:
    """Why ``log`` does not hold its witness' head, or None if it does.

    ``records`` is how many records the log holds, ``hash_at_count`` the hash of its record
    ``witness.count`` (None if it has none).
    """
    if not belongs_to(witness, log):
        return f"witness {path} is the witness of another log ({witness.log}), not of {log}"
    if witness.count > records:
        return (
            f"log is behind its witness: {records} records, witness has {witness.count} "
            f"(witness {path})"
        )
    if witness.count and hash_at_count != witness.head:
        return (
            f"log does not hold its witness' head: record seq {witness.count} is not the one "
            f"witness {path} names (the log was rewritten)"
        )
    return None


__all__ = [
    "RESET_HINT",
    "Witness",
    "belongs_to",
    "compare",
    "default_witness_path",
    "load_witness",
    "log_identity",
    "state_home",
    "store_witness",
    "witness_path_for",
]
