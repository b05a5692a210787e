"""Time to detect, to mitigate and to contain, from a timeline, as a drill scores them (seed
M9): each from the attacker's first request (``first-request``) to the first ``alert-firing``,
the first ``mitigation`` (a mitigating step's outcome in the audit log) and the first
``contained``; rounded to the millisecond, never negative, None when not reached."""

from __future__ import annotations

from datetime import datetime

from console.incidents.model import IncidentEvent, IncidentTimes

START = "first-request"
DETECTED = "alert-firing"
MITIGATED = "mitigation"
CONTAINED = "contained"


def first_at(events: list[IncidentEvent], kind: str) -> datetime | None:
    found = [e.at for e in events if e.kind == kind]
    return min(found) if found else None


def since(start: datetime | None, end: datetime | None) -> float | None:
    """As ``console.drills.scores.since``, on datetimes."""
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 3)


def incident_times(events: list[IncidentEvent]) -> IncidentTimes:
    start = first_at(events, START)
    return IncidentTimes(
        time_to_detect_s=since(start, first_at(events, DETECTED)),
        time_to_mitigate_s=since(start, first_at(events, MITIGATED)),
        time_to_contain_s=since(start, first_at(events, CONTAINED)),
    )


__all__ = ["CONTAINED", "DETECTED", "MITIGATED", "START", "first_at", "incident_times", "since"]
