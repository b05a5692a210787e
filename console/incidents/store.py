"""Where incidents live: one JSON file each, ``<run_dir>/incidents/<id>.json`` (0600, the
folder 0700), and the audit records that open, note and close them (``incident-open``,
``incident-note``, ``incident-close``; ``run_id`` is the incident's id).

The audit record comes first: if it cannot be written, nothing changes (as a runbook step does
not run without its intent). Notes live in the audit log only; the timeline reads them there.
Read-only mode refuses every write; reading and exporting still work."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from console.errors import IncidentError, IncidentNotFound, ReadOnlyError
from console.incidents.model import (
    ATTACK_KINDS,
    ID_PATTERN,
    ID_PREFIX_PATTERN,
    NAME_MAX,
    NOTE_MAX,
    SEVERITIES,
    TITLE_MAX,
    AttackKind,
    Incident,
    IncidentEvent,
    IncidentSource,
    utc,
)
from console.private_files import open_private, private_dir, write_private

if TYPE_CHECKING:
    from console.audit.log import AuditLog
    from console.config import Settings

RUNBOOK = "incident"
"""The ``runbook`` field of every incident-* audit record."""
FILE_MAX = 256 * 1024
"""An incident file larger than this is not read (listed in ``problems``)."""


def incidents_dir(settings: Settings) -> Path:
    return settings.run_dir / "incidents"


def check_id(incident_id: str) -> str:
    """``incident_id`` if it can be an incident id or a prefix of one; IncidentNotFound (one
    line) for anything else, so no path is ever built from ``../x``."""
    if not isinstance(incident_id, str) or not ID_PREFIX_PATTERN.match(incident_id):
        shown = repr(incident_id[:40]) if isinstance(incident_id, str) else "?"
        raise IncidentNotFound(
            f"not an incident id: {shown} (ids look like inc-20261202-2105-3fa2; see "
            "`incident list`)"
        )
    return incident_id


def _bounded(what: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    if len(value) > limit:
        raise IncidentError(f"{what} is {len(value)} characters long; at most {limit} are kept")
    if "\x00" in value:
        raise IncidentError(f"{what} holds a NUL character")
    return value


class IncidentStore:
    """Incidents of one context. ``problems`` lists the files the last ``all()`` skipped."""

    def __init__(self, settings: Settings, audit: AuditLog | None = None) -> None:
        self.settings = settings
        self._audit = audit
        self.root = incidents_dir(settings)
        self.problems: list[str] = []

    @property
    def audit(self) -> AuditLog:
        if self._audit is None:
            from console.audit.log import AuditLog

            self._audit = AuditLog.from_settings(self.settings)
        return self._audit

    # Writing ---------------------------------------------------------------------------------
    def open(
        self,
        *,
        title: str,
        severity: str,
        attack_kind: AttackKind,
        model: str | None,
        client: str | None,
        operator: str,
        source: IncidentSource = "manual",
        alert: str | None = None,
        drill_id: str | None = None,
        opened_at: datetime | None = None,
    ) -> Incident:
        """Open an incident; ``opened_at`` (added to the contract) backdates it, for a drill
        that opens its incident when it ends."""
        self.refuse_read_only("incident open")
        if severity not in SEVERITIES:
            raise IncidentError(
                f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}"
            )
        if attack_kind not in ATTACK_KINDS:
            raise IncidentError(
                f"attack kind must be one of {', '.join(ATTACK_KINDS)}, not {attack_kind[:40]!r}"
            )
        title = _bounded("the title", title.strip(), TITLE_MAX) or ""
        for what, value in (("the model", model), ("the client", client), ("the alert", alert)):
            _bounded(what, value, NAME_MAX)
        when = utc(opened_at) if opened_at else datetime.now(UTC)
        with self._locked():
            incident_id = self._new_id(when)
            try:
                incident = Incident(
                    id=incident_id,
                    title=title or _default_title(attack_kind, model, client),
                    status="open",
                    severity=severity,
                    attack_kind=attack_kind,
                    model=model or None,
                    client=client or None,
                    opened_at=when,
                    opened_by=operator,
                    source=source,
                    alert=alert or None,
                    drill_id=drill_id,
                )
            except ValidationError as exc:
                first = exc.errors()[0]
                raise IncidentError(f"incident: {first['loc'][0]}: {first['msg']}") from None
            self._record(
                "incident-open",
                incident,
                operator,
                {
                    "title": incident.title,
                    "severity": severity,
                    "attack_kind": attack_kind,
                    "model": incident.model,
                    "client": incident.client,
                    "source": source,
                    "alert": incident.alert,
                    "drill_id": drill_id,
                    "opened_at": when.isoformat(),
                },
            )
            self._write(incident)
        return incident

    def note(self, incident_id: str, text: str, operator: str) -> IncidentEvent:
        """Add a note (an ``incident-note`` audit record, the text in ``arguments.text``)."""
        self.refuse_read_only("incident note")
        if not text.strip():
            raise IncidentError("a note needs some text")
        if len(text) > NOTE_MAX:
            raise IncidentError(
                f"the note is {len(text)} characters long; at most {NOTE_MAX} are accepted"
            )
        _bounded("the note", text, NOTE_MAX)
        incident = self.get(incident_id)
        record = self._record("incident-note", incident, operator, {"text": text})
        return IncidentEvent(record.time, "note", text, operator)

    def close(
        self, incident_id: str, operator: str, reason: str = "", at: datetime | None = None
    ) -> Incident:
        """Close an open incident; ``at`` (added) backdates it, for a drill."""
        self.refuse_read_only("incident close")
        if len(reason) > NOTE_MAX:
            raise IncidentError(
                f"the reason is {len(reason)} characters long; at most {NOTE_MAX} are accepted"
            )
        _bounded("the reason", reason, NOTE_MAX)
        with self._locked():
            incident = self.get(incident_id)
            if not incident.is_open:
                raise IncidentError(
                    f"incident {incident.id} is already closed (by {incident.closed_by})"
                )
            when = utc(at) if at else datetime.now(UTC)
            closed = incident.model_copy(
                update={
                    "status": "closed",
                    "closed_at": max(when, incident.opened_at),
                    "closed_by": operator,
                    "close_reason": reason or None,
                }
            )
            self._record("incident-close", closed, operator, {"reason": reason})
            self._write(closed)
        return closed

    # Reading ---------------------------------------------------------------------------------
    def get(self, incident_id: str) -> Incident:
        """The incident with that id, or the only one whose id starts with it."""
        check_id(incident_id)
        if ID_PATTERN.match(incident_id):
            path = self.root / f"{incident_id}.json"
            if path.is_file():
                return self._read(path)
        matches = [p for p in self._files() if p.stem.startswith(incident_id)]
        if len(matches) == 1:
            return self._read(matches[0])
        if len(matches) > 1:
            names = ", ".join(p.stem for p in matches[:5])
            raise IncidentNotFound(f"{incident_id!r} names {len(matches)} incidents: {names}")
        raise IncidentNotFound(
            f"no incident {incident_id!r} under {self.root} (see `incident list`)"
        )

    def all(self) -> list[Incident]:
        """Every incident, newest first; unreadable files are skipped and named in
        ``problems``."""
        found: list[Incident] = []
        problems: list[str] = []
        for path in self._files():
            try:
                found.append(self._read(path))
            except IncidentError as exc:
                problems.append(str(exc))
        self.problems = problems
        # The id's minute sorts them, and the opening time within a minute.
        return sorted(found, key=lambda i: (i.opened_at, i.id), reverse=True)

    def current(self) -> Incident | None:
        """The newest open incident."""
        return next((i for i in self.all() if i.is_open), None)

    def open_for(self, model: str | None, client: str | None) -> Incident | None:
        """The newest open incident on that client (or, for one without a client, on that
        model)."""
        for incident in self.all():
            if not incident.is_open:
                continue
            if client is not None and incident.client == client:
                return incident
            if (
                model is not None
                and incident.model == model
                and (incident.client is None or client is None)
            ):
                return incident
        return None

    def folder(self, incident_id: str) -> Path:
        """``<run_dir>/incidents/<id>/`` (0700): exports and attachments (created)."""
        incident = self.get(incident_id)
        return private_dir(self.root / incident.id)

    def attach(self, incident_id: str, name: str, data: dict[str, Any]) -> Path:
        """Write ``<id>/<name>.json`` (0600): a drill's timeline and series."""
        if not name.isidentifier():
            raise IncidentError(f"not an attachment name: {name!r}")
        path = self.folder(incident_id) / f"{name}.json"
        write_private(path, json.dumps(data, indent=2, default=str))
        return path

    def attachment(self, incident_id: str, name: str) -> dict[str, Any] | None:
        """``<id>/<name>.json``; None when there is none or it is unreadable."""
        incident = self.get(incident_id)
        path = self.root / incident.id / f"{name}.json"
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > 16 * FILE_MAX:
                return None
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # Internals -------------------------------------------------------------------------------
    def refuse_read_only(self, what: str) -> None:
        if self.settings.read_only:
            raise ReadOnlyError(
                f"read-only mode: {what} writes to the audit log and was refused (leave "
                "read-only mode to run it)"
            )

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(
            (p for p in self.root.glob("inc-*.json") if ID_PATTERN.match(p.stem)), reverse=True
        )

    def _read(self, path: Path) -> Incident:
        try:
            if path.is_symlink() or not path.is_file():
                raise IncidentError(f"{path} is not a regular file")
            if path.stat().st_size > FILE_MAX:
                raise IncidentError(f"{path} is larger than {FILE_MAX} bytes")
            incident = Incident.model_validate_json(path.read_bytes())
        except OSError as exc:
            raise IncidentError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValidationError:
            raise IncidentError(f"{path} is not a readable incident") from None
        if incident.id != path.stem:
            raise IncidentError(f"{path} holds incident {incident.id}, not {path.stem}")
        return incident

    def _write(self, incident: Incident) -> None:
        try:
            private_dir(self.root)
            write_private(self.root / f"{incident.id}.json", incident.model_dump_json(indent=2))
        except OSError as exc:
            raise IncidentError(
                f"cannot write incident {incident.id} to {self.root}: {exc.strerror or exc}"
            ) from None

    def _new_id(self, when: datetime) -> str:
        for _ in range(64):
            candidate = f"inc-{when:%Y%m%d-%H%M}-{secrets.token_hex(2)}"
            if not (self.root / f"{candidate}.json").exists():
                return candidate
        raise IncidentError("could not find a free incident id (64 tries)")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time across processes (a new id, open -> closed)."""
        try:
            private_dir(self.root)
            fd = open_private(self.root / ".lock", os.O_RDWR)
        except OSError as exc:
            raise IncidentError(f"cannot write to {self.root}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _record(
        self, kind: str, incident: Incident, operator: str, arguments: dict[str, Any]
    ) -> Any:
        from console.audit.records import AuditEvent

        return self.audit.append(
            AuditEvent.model_validate(
                {
                    "kind": kind,
                    "operator": operator,
                    "environment": self.settings.environment,
                    "run_id": incident.id,
                    "runbook": RUNBOOK,
                    "target": _target(incident),
                    "arguments": arguments,
                    "result": incident.status,
                }
            )
        )


def _target(incident: Incident) -> str | None:
    if incident.client:
        return f"client:{incident.client}"
    return f"model:{incident.model}" if incident.model else None


def _default_title(kind: str, model: str | None, client: str | None) -> str:
    on = f" on {model}" if model else ""
    by = f" by {client}" if client else ""
    return f"{kind}{on}{by}"[:TITLE_MAX]


__all__ = ["RUNBOOK", "IncidentStore", "check_id", "incidents_dir"]
