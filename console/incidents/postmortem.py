"""The postmortem draft as plain data, from an incident's collected timeline: the summary, the
key moments with time to detect, mitigate and contain, what was done and by whom, the notes,
the evidence and replay verdicts, and what could not be read. ``export_md``, ``export_html``
and ``export_json`` render it; every string in it may be attacker-controlled."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from console.incidents.model import Incident, IncidentEvent, IncidentTimes
from console.incidents.timeline import Collected
from console.incidents.times import CONTAINED, DETECTED, MITIGATED, START, first_at

ACTION_KINDS = (
    "run",
    "run-finished",
    "step",
    "mitigation",
    "promotion",
    "compensated",
    "approval",
    "response-started",
    "response-finished",
)
"""Timeline kinds that are something a person (or the drill's responder) did."""


@dataclass(frozen=True)
class Moment:
    label: str
    at: datetime | None
    seconds: float | None
    """From the attacker's first request (the figure it names), None if not reached."""
    figure: str = ""
    """``time_to_detect_s`` ... for the figures, empty for the others."""


@dataclass
class Postmortem:
    incident: Incident
    times: IncidentTimes
    events: list[IncidentEvent]
    moments: list[Moment]
    actions: list[IncidentEvent]
    notes: list[IncidentEvent]
    evidence: list[IncidentEvent]
    replays: list[IncidentEvent]
    missing: list[str]
    recurrence: str | None = None
    drill: dict[str, Any] | None = None
    chart: str | None = None
    """The chart's file name, relative to the export (None: not drawn)."""
    chart_problem: str | None = None
    generated_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> list[str]:
        inc = self.incident
        on = f" on model {inc.model}" if inc.model else ""
        by = f" by client {inc.client}" if inc.client else ""
        lines = [
            f"{inc.severity} {inc.attack_kind} incident{on}{by}.",
            f"Opened {stamp(inc.opened_at)} by {inc.opened_by} ({inc.source}"
            + (f", alert {inc.alert}" if inc.alert else "")
            + (f", drill {inc.drill_id}" if inc.drill_id else "")
            + ").",
        ]
        if inc.closed_at is not None:
            reason = f": {inc.close_reason}" if inc.close_reason else ""
            lines.append(f"Closed {stamp(inc.closed_at)} by {inc.closed_by}{reason}.")
        else:
            lines.append("Still open.")
        times = self.times
        lines.append(
            f"From the attacker's first request: detected in {seconds(times.time_to_detect_s)}, "
            f"mitigated in {seconds(times.time_to_mitigate_s)}, contained in "
            f"{seconds(times.time_to_contain_s)}."
        )
        if self.recurrence:
            lines.append(f"Recurrence: {self.recurrence}.")
        return lines


def stamp(at: datetime | None) -> str:
    return (
        "–" if at is None else at.strftime("%Y-%m-%d %H:%M:%S") + f".{at.microsecond // 1000:03d}Z"
    )


def seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.3f} s"


def relative(at: datetime, origin: datetime) -> str:
    return f"{(at - origin).total_seconds():+.1f} s"


def build(collected: Collected, recurrence: str | None = None) -> Postmortem:
    events = collected.events
    times = collected.times
    resolved = first_at(events, "closed")
    moments = [
        Moment(
            "first attacker request",
            first_at(events, START),
            0.0 if first_at(events, START) else None,
        ),
        Moment(
            "alert firing", first_at(events, DETECTED), times.time_to_detect_s, "time_to_detect_s"
        ),
        Moment(
            "first mitigation",
            first_at(events, MITIGATED),
            times.time_to_mitigate_s,
            "time_to_mitigate_s",
        ),
        Moment(
            "containment", first_at(events, CONTAINED), times.time_to_contain_s, "time_to_contain_s"
        ),
        Moment("resolution (closed)", resolved, None),
    ]
    return Postmortem(
        incident=collected.incident,
        times=times,
        events=events,
        moments=moments,
        actions=[e for e in events if e.kind in ACTION_KINDS],
        notes=[e for e in events if e.kind == "note"],
        evidence=[e for e in events if e.kind == "evidence"],
        replays=[e for e in events if e.kind == "replay"],
        missing=list(collected.missing),
        recurrence=recurrence,
        drill=collected.drill,
    )


__all__ = ["ACTION_KINDS", "Moment", "Postmortem", "build", "relative", "seconds", "stamp"]
