"""Attack state files, so ``lab status`` can show attacks: ``<lab_dir>/attacks/<id>.json``.

An attack run from the CLI writes its file when it starts (``running``, with its pid and the
pid's start time) and rewrites it when it ends (``finished`` with the report, or ``failed``
with the error). A ``running`` file whose process is gone reads back as ``dead``. Files are
replaced atomically, mode 0600 in a 0700 folder (reports name clients and models); the newest
``KEEP`` are kept.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from console.config import Settings
from console.lab import process
from console.private_files import private_dir, write_private

KEEP = 50
AttackState = Literal["running", "finished", "failed", "dead"]


class AttackRecord(BaseModel):
    id: str
    kind: str
    client: str
    model: str
    pid: int
    pid_start_ticks: int | None = None
    started: datetime
    ended: datetime | None = None
    state: AttackState = "running"
    report: dict[str, Any] | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """The record without the report (what ``lab status`` lists)."""
        return self.model_dump(mode="json", exclude={"report"})


def attacks_dir(settings: Settings) -> Path:
    return settings.lab_dir / "attacks"


def _write(settings: Settings, record: AttackRecord) -> None:
    directory = private_dir(attacks_dir(settings))
    write_private(directory / f"{record.id}.json", record.model_dump_json(indent=2) + "\n")


def _prune(settings: Settings) -> None:
    files = sorted(attacks_dir(settings).glob("*.json"), key=lambda p: p.name, reverse=True)
    for old in files[KEEP:]:
        old.unlink(missing_ok=True)


@asynccontextmanager
async def tracked(
    settings: Settings, kind: str, client: str, model: str
) -> AsyncIterator[AttackRecord]:
    """Record an attack for its duration; set ``record.report`` before leaving."""
    now = datetime.now(UTC)
    record = AttackRecord(
        # Time first: names sort by start time.
        id=f"{now:%Y%m%dT%H%M%S}-{kind}-{secrets.token_hex(3)}",
        kind=kind,
        client=client,
        model=model,
        pid=os.getpid(),
        pid_start_ticks=process.start_ticks(os.getpid()),
        started=now,
    )
    _write(settings, record)
    try:
        yield record
    except BaseException as exc:
        record.state, record.error = "failed", str(exc) or type(exc).__name__
        raise
    else:
        record.state = "finished"
    finally:
        record.ended = datetime.now(UTC)
        _write(settings, record)
        _prune(settings)


def list_attacks(settings: Settings, limit: int = 20) -> list[AttackRecord]:
    """The newest ``limit`` attacks, newest first; unreadable files are skipped."""
    directory = attacks_dir(settings)
    if not directory.is_dir():
        return []
    records = []
    for path in sorted(directory.glob("*.json"), key=lambda p: p.name, reverse=True)[:limit]:
        try:
            record = AttackRecord.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            continue
        if record.state == "running" and not _alive(record):
            record.state = "dead"
        records.append(record)
    return records


def stop_running(settings: Settings) -> list[AttackRecord]:
    """Stop (SIGTERM) every attack still running from this lab dir; recorded as failed with the
    reason. `lab down` calls it: an attacker must not outlive the lab it targets."""
    stopped = []
    for record in list_attacks(settings, limit=KEEP):
        if record.state != "running":
            continue
        try:
            os.kill(record.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        record.state, record.error = "failed", "stopped by `aml-console lab down`"
        record.ended = datetime.now(UTC)
        _write(settings, record)
        stopped.append(record)
    return stopped


def _alive(record: AttackRecord) -> bool:
    if record.pid_start_ticks is None:
        return process.start_ticks(record.pid) is not None
    return process.start_ticks(record.pid) == record.pid_start_ticks


__all__ = ["AttackRecord", "attacks_dir", "list_attacks", "stop_running", "tracked"]
