"""Incidents view: the context's incidents (``<run_dir>/incidents/``), newest first, each with
how often its kind came back (recurrence over 90 days), and the selected one's timeline with
its time to detect, to mitigate and to contain.

The listing and the selected incident's timeline are read at once: the files in a thread, the
timeline (audit log, the metrics engine's alert history) through ``build_timeline``, which
never raises for a backend that is down (its events then hold an ``error`` naming what is
missing). Also the writes the TUI makes on an incident (a note, closing it, opening one from an
alert, the markdown export), each a plain function the screens call in a worker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from console.errors import IncidentError
from console.incidents.from_alert import kind_of_alert
from console.incidents.model import (
    SEVERITIES,
    AttackKind,
    Incident,
    IncidentEvent,
    IncidentTimes,
)
from console.incidents.recurrence import Recurrence, recurrence, recurrence_of
from console.incidents.store import IncidentStore
from console.incidents.timeline import build_timeline, incident_times
from console.views.together import all_at_once

if TYPE_CHECKING:
    from console.adapters.backends import Backends
    from console.config import Settings
    from console.incidents.export import Exported

RECURRING_SHOWN = 3
"""Recurrence lines shown above the table (the most frequent first)."""
KIND_WORDS: tuple[tuple[tuple[str, ...], AttackKind], ...] = (
    (("extraction",), "extraction"),
    (("evasion", "adversarial"), "evasion"),
    (("flood", "budget", "rate"), "flood"),
    (("poison",), "poisoning"),
)
"""An alert the shipped table (``KIND_OF_ALERT``) does not know: words of its name, in this
order (``AMLEvasionFlagRateSpike`` is evasion, not a flood)."""
SEVERITY_OF_LABEL = {"critical": "critical", "page": "critical", "warning": "warning"}


@dataclass(frozen=True)
class IncidentRow:
    incident: Incident
    recurrence: str
    """"mallory-* extraction on digits: 3rd incident this month"."""


@dataclass(frozen=True)
class IncidentDetail:
    """The timeline of one incident, as read when the snapshot was taken."""

    incident: Incident
    events: list[IncidentEvent]
    times: IncidentTimes

    @property
    def missing(self) -> list[str]:
        """What could not be read (the timeline's ``error`` events)."""
        return [e.detail for e in self.events if e.kind == "error"]


@dataclass(frozen=True)
class IncidentsSnapshot:
    rows: list[IncidentRow]
    """Newest first."""
    recurring: list[Recurrence] = field(default_factory=list)
    """Across every incident of the last 90 days, the most frequent first."""
    problems: list[str] = field(default_factory=list)
    """Incident files that could not be read (skipped)."""
    detail: IncidentDetail | None = None
    """The selected incident's timeline (the newest one's when none was selected)."""

    @property
    def open_count(self) -> int:
        return sum(1 for r in self.rows if r.incident.is_open)

    def find(self, incident_id: str) -> IncidentRow | None:
        return next((r for r in self.rows if r.incident.id == incident_id), None)


def _listing(settings: Settings) -> tuple[list[Incident], list[str]]:
    store = IncidentStore(settings)
    try:
        incidents = store.all()
    except OSError as exc:
        raise IncidentError(f"cannot list {store.root}: {exc.strerror or exc}") from None
    return incidents, store.problems


def _get(settings: Settings, incident_id: str) -> Incident | None:
    try:
        return IncidentStore(settings).get(incident_id)
    except (IncidentError, OSError):
        return None  # removed meanwhile, or unreadable (the listing names the file)


async def read_detail(incident: Incident, backends: Backends) -> IncidentDetail:
    events = await build_timeline(incident, backends.settings, backends)
    return IncidentDetail(incident, events, incident_times(events))


async def _detail_of(incident_id: str, backends: Backends) -> IncidentDetail | None:
    incident = await asyncio.to_thread(_get, backends.settings, incident_id)
    return None if incident is None else await read_detail(incident, backends)


async def fetch_incidents(
    backends: Backends, selected: str | None, now: datetime
) -> IncidentsSnapshot:
    """Every incident, and the timeline of ``selected`` (None: of the newest), read at once."""
    settings = backends.settings
    async with all_at_once() as reads:
        listed = reads.create_task(asyncio.to_thread(_listing, settings))
        detail = reads.create_task(_detail_of(selected, backends)) if selected else None
    incidents, problems = listed.result()
    found = detail.result() if detail is not None else None
    if found is None and incidents and not selected:
        found = await read_detail(incidents[0], backends)
    rows = [IncidentRow(i, recurrence_of(i, incidents, now).text) for i in incidents]
    return IncidentsSnapshot(
        rows, recurrence(incidents, now)[:RECURRING_SHOWN], list(problems), found
    )


# What the TUI writes -----------------------------------------------------------------------
def guess_kind(alertname: str) -> AttackKind:
    """The attack an alert points to: the shipped alerts by name, others by the words of
    their name; ``unknown`` otherwise."""
    known = kind_of_alert(alertname)
    if known != "unknown":
        return known
    lowered = alertname.lower()
    for words, kind in KIND_WORDS:
        if any(word in lowered for word in words):
            return kind
    return "unknown"


def severity_of(label: str | None) -> str:
    """An alert's severity label as an incident's severity (critical, warning or info)."""
    value = (label or "").lower()
    if value in SEVERITIES:
        return value
    return SEVERITY_OF_LABEL.get(value, "info" if value == "ticket" else "warning")


def open_from_alert(settings: Settings, labels: dict[str, str]) -> tuple[Incident, bool]:
    """The open incident on the alert's model/client, or a new one opened from the alert's
    labels; the flag says whether it was opened now. ReadOnlyError in read-only mode."""
    store = IncidentStore(settings)
    store.refuse_read_only("incident open")
    alertname = labels.get("alertname", "")
    model, client = labels.get("model") or None, labels.get("client") or None
    if model is None and client is None:
        raise IncidentError(
            f"alert {alertname[:80]!r} names no client and no model: open one with "
            "`aml-console incident open --model M`"
        )
    existing = store.open_for(model, client)
    if existing is not None:
        return existing, False
    title = f"{alertname or 'alert'} on {client or model}"
    incident = store.open(
        title=title[:200],
        severity=severity_of(labels.get("severity")),
        attack_kind=guess_kind(alertname),
        model=model,
        client=client,
        operator=settings.operator,
        source="alert",
        alert=alertname or None,
    )
    return incident, True


def add_note(settings: Settings, text: str, incident_id: str | None = None) -> Incident:
    """A note on ``incident_id`` (None: the current open incident); IncidentError when there
    is none, ReadOnlyError in read-only mode."""
    store = IncidentStore(settings)
    store.refuse_read_only("incident note")
    if not text.strip():
        raise IncidentError("a note needs some text: :note TEXT")
    if incident_id is None:
        current = store.current()
        if current is None:
            raise IncidentError(
                "no incident is open: open one with i on an alert (1 Alerts), then :note TEXT"
            )
        incident_id = current.id
    incident = store.get(incident_id)
    store.note(incident.id, text.strip(), settings.operator)
    return incident


def close_incident(settings: Settings, incident_id: str, reason: str) -> Incident:
    return IncidentStore(settings).close(incident_id, settings.operator, reason.strip())


def export_markdown(settings: Settings, incident_id: str) -> Exported:
    """The postmortem draft as markdown, written to ``<run_dir>/incidents/<id>/``. Blocking
    (the chart is drawn with matplotlib): call it in a thread. It reads through clients of its
    own, made and closed on that thread's event loop."""
    from console.adapters.backends import Backends
    from console.incidents.export import export_incident

    async def export() -> Exported:
        backends = Backends(settings)
        try:
            return await export_incident(settings, backends, incident_id, "md")
        finally:
            await backends.aclose()

    try:
        return asyncio.run(export())
    except OSError as exc:
        raise IncidentError(f"cannot export {incident_id}: {exc.strerror or exc}") from None


__all__ = [
    "IncidentDetail",
    "IncidentRow",
    "IncidentsSnapshot",
    "add_note",
    "close_incident",
    "export_markdown",
    "fetch_incidents",
    "guess_kind",
    "open_from_alert",
    "read_detail",
    "severity_of",
]
