"""``audit reset-witness``: accept the log as it is now, on an operator's word, on the record.

After a deliberate reset of the log (a new deployment, a log archived away), the witness still
names the old head and every append is refused. Resetting appends a ``witness-reset`` record
saying what the witness held, without comparing the log with it, and moves the witness to that
record: the log itself shows who reset it, when, and from what.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from console.audit.log import AuditLog
from console.audit.records import AuditEvent, AuditRecord, BadRecord
from console.audit.witness import load_witness
from console.errors import AuditError


@dataclass(frozen=True)
class WitnessReset:
    record: AuditRecord
    """The ``witness-reset`` record; the witness now names it."""
    was: dict[str, Any] | None
    """What the witness held before (None: there was none)."""

    def summary(self) -> str:
        if self.was is None:
            held = "there was none"
        elif "problem" in self.was:
            held = f"it could not be read ({self.was['problem']})"
        else:
            held = f"it held {self.was['count']} records"
        return (
            f"witness {self.record.target} reset ({held}): it now names record seq "
            f"{self.record.seq}, the reset itself, by {self.record.operator}"
        )


def reset_witness(log: AuditLog, operator: str, environment: str) -> WitnessReset:
    """Move ``log``'s witness to the log's head, recorded as the log's next record."""
    if log.witness_path is None:
        raise AuditError('the audit log has no witness (audit.witness = "none"): nothing to reset')
    key = log.require_key()
    # Read before the append takes the lock: an append landing in between moves the witness
    # one record further than the record says it was, which the chain itself shows.
    was: dict[str, Any] | None
    try:
        witness = load_witness(log.witness_path, key)
        was = witness.describe() if witness is not None else None
    except (BadRecord, OSError) as exc:
        was = {"problem": str(exc)}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = log.append_over_witness(
        AuditEvent(
            kind="witness-reset",
            operator=operator,
            environment=environment,
            run_id=f"witness-reset-{stamp}",
            runbook="audit reset-witness",
            action="audit.reset_witness",
            target=str(log.witness_path),
            arguments={"log": str(log.path), "witness": str(log.witness_path)},
            before=was,
            result="ok",
        )
    )
    return WitnessReset(record, was)


__all__ = ["WitnessReset", "reset_witness"]
