"""An incident's timeline, sorted by time: its opening and close, the audit log's records on
its client or model (runs, mitigations, evidence, replays, approvals, notes), and from the
metrics engine its alerts' history, the attacker's first request and containment.

A drill's incident carries the drill's own timeline (``<id>/drill.json``, written by
``console.drills.incident``), so a drill's postmortem and a real incident's are the same
document with the same figures. A backend that is down gives the events that could be read
and an ``error`` event naming what is missing; nothing here raises for a backend failure."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from console.errors import ConsoleError
from console.incidents.audit_events import audit_events, window
from console.incidents.model import Incident, IncidentEvent, IncidentTimes
from console.incidents.prom_history import RatePoint, containment, read_history
from console.incidents.store import IncidentStore
from console.incidents.times import MITIGATED, first_at, incident_times

if TYPE_CHECKING:
    from console.adapters.backends import Backends
    from console.config import Settings

ORDER = {"opened": 0, "drill-start": 1, "closed": 99}
"""Ties at the same instant: the opening first, the close last."""
DRILL_ATTACHMENT = "drill"


@dataclass
class Collected:
    """What a postmortem is drawn from."""

    incident: Incident
    events: list[IncidentEvent]
    times: IncidentTimes
    series: list[RatePoint] = field(default_factory=list)
    highlight: str | None = None
    """The line drawn in red (the attacker's), when the series has one per client."""
    missing: list[str] = field(default_factory=list)
    """One line each: what could not be read."""
    drill: dict[str, Any] | None = None
    """A drill's scores and report folder (``drill.json`` without its events)."""


def sort_events(events: list[IncidentEvent]) -> list[IncidentEvent]:
    return sorted(events, key=lambda e: (e.at, ORDER.get(e.kind, 50)))


def _own_events(incident: Incident) -> list[IncidentEvent]:
    who = f" by {incident.opened_by}"
    opened = f"{incident.severity} {incident.attack_kind} incident opened{who}"
    if incident.alert:
        opened += f" from alert {incident.alert}"
    events = [IncidentEvent(incident.opened_at, "opened", opened, incident.opened_by)]
    if incident.closed_at is not None:
        reason = f": {incident.close_reason}" if incident.close_reason else ""
        events.append(
            IncidentEvent(incident.closed_at, "closed", f"closed{reason}", incident.closed_by)
        )
    return events


def _read_audit(incident: Incident, settings: Settings, now: datetime) -> list[IncidentEvent]:
    from console.audit.log import AuditLog

    return audit_events(AuditLog.from_settings(settings).records(), incident, now)


def _error(at: datetime, what: str) -> IncidentEvent:
    return IncidentEvent(at, "error", what)


async def collect(incident: Incident, settings: Settings, backends: Backends) -> Collected:
    """The timeline with its times, the request-rate series and what is missing."""
    now = datetime.now(UTC)
    events = _own_events(incident)
    missing: list[str] = []
    drill = None
    if incident.source == "drill":
        drill = IncidentStore(settings).attachment(incident.id, DRILL_ATTACHMENT)
    try:
        audited = await asyncio.to_thread(_read_audit, incident, settings, now)
    except ConsoleError as exc:
        audited = []
        missing.append(f"audit log unreadable (runs, mitigations and notes missing): {exc}")
    if drill is not None:
        return _drill_collected(incident, events, audited, drill, missing)
    if incident.source == "drill":
        missing.append(f"the drill's timeline ({incident.id}/drill.json) is missing or unreadable")
    events.extend(audited)
    start, end = window(incident, now)
    history = await read_history(incident, backends, start, end)
    events.extend(history.events)
    if history.problem:
        missing.append(history.problem)
    contained = containment(history.answered, first_at(events, MITIGATED))
    if contained is not None:
        events.append(contained)
    events.extend(_error(end, line) for line in missing)
    events = sort_events(events)
    return Collected(incident, events, incident_times(events), history.series, None, missing)


def _drill_collected(
    incident: Incident,
    events: list[IncidentEvent],
    audited: list[IncidentEvent],
    drill: dict[str, Any],
    missing: list[str],
) -> Collected:
    """A drill's incident: the drill's timeline and runs, the incident's notes."""
    try:
        own = [IncidentEvent.from_dict(e) for e in drill.get("events", [])]
        series = [
            RatePoint(datetime.fromisoformat(str(row["at"])), dict(row["values"]))
            for row in drill.get("series", [])
        ]
    except (KeyError, TypeError, ValueError) as exc:
        own, series = [], []
        missing.append(f"the drill's timeline is unreadable: {exc}")
    notes = [e for e in audited if e.kind == "note"]
    end = incident.closed_at or datetime.now(UTC)
    events = sort_events([*events, *own, *notes, *(_error(end, line) for line in missing)])
    scores = {k: v for k, v in drill.items() if k not in ("events", "series")}
    highlight = str(drill.get("attacker") or incident.client or "") or None
    return Collected(incident, events, incident_times(events), series, highlight, missing, scores)


async def build_timeline(
    incident: Incident, settings: Settings, backends: Backends
) -> list[IncidentEvent]:
    """The incident's events, sorted by time (see the module's docstring)."""
    return (await collect(incident, settings, backends)).events


__all__ = ["Collected", "build_timeline", "collect", "incident_times", "sort_events"]
