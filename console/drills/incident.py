"""A drill's incident: opened at the drill's start (source ``drill``, its ``drill_id``), its
timeline the drill's own, closed at the drill's end, so ``incident export`` of a drill gives
the same postmortem as a real incident, with the drill's scores as its figures.

Best effort: a drill's report is whole without it (read-only mode, an audit log that cannot
be written), and the reason goes into the report's ``errors``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from console.errors import ConsoleError

if TYPE_CHECKING:
    from console.config import Settings
    from console.drills.report_data import DrillReport
    from console.drills.scenario import Scenario


def _scored_times(report: DrillReport) -> dict[str, float]:
    """Seconds since the start at which the scores put the first request, the alert and
    containment. The runner stamps a timeline event a few milliseconds after the observation
    its score is computed from; the mitigation's event is the audit record's own time, so the
    first request is found back from it (or from containment), and the others from that, so
    the incident's times are the scores exactly."""
    scores = report.scores
    seen: dict[str, float] = {}
    for event in sorted(report.timeline, key=lambda e: e.at_s):
        seen.setdefault(event.kind, event.at_s)
    first: float | None = None
    if scores.time_to_mitigate_s and "mitigation" in seen:
        first = round(seen["mitigation"] - scores.time_to_mitigate_s, 3)
    elif scores.time_to_contain_s and "contained" in seen:
        first = round(seen["contained"] - scores.time_to_contain_s, 3)
    placed = {} if first is None else {"first-request": first}
    first = seen.get("first-request") if first is None else first
    if first is None:
        return placed
    figures = (
        ("alert-firing", scores.time_to_detect_s),
        ("mitigation", scores.time_to_mitigate_s),
        ("contained", scores.time_to_contain_s),
    )
    for kind, value in figures:
        if value is not None and kind in seen:
            placed[kind] = round(first + value, 3)
    return placed


def _operator(kind: str, report: DrillReport, responder: str) -> str | None:
    """Who did it: the mitigation's record names its operator (a person at the TUI, or the
    scripted responder), the scripted responder's runs are this console's operator."""
    from console.incidents.audit_events import MITIGATING_ACTIONS

    if kind == "mitigation":
        for record in report.audit:
            if (
                record.get("kind") == "step-outcome"
                and record.get("result") == "ok"
                and record.get("action") in MITIGATING_ACTIONS
                and record.get("target") in (f"client:{report.attacker}", f"model:{report.model}")
            ):
                return str(record.get("operator"))
    if kind.startswith("response-") and report.responder == "auto":
        return responder
    return None


FROM_AUDIT = ("run", "evidence", "replay", "approval", "compensated")
"""What the drill's audit records add to its own timeline (its mitigation is its own)."""


def _from_audit(report: DrillReport, started: datetime) -> list[dict[str, Any]]:
    """The drill's runbook runs with their operators, evidence captures, replays and
    approvals, from its audit records."""
    from pydantic import ValidationError

    from console.audit.records import AuditRecord
    from console.incidents.audit_events import to_event

    found = []
    for raw in report.audit:
        try:
            event = to_event(AuditRecord.model_validate(raw))
        except ValidationError:
            continue
        if event is not None and event.kind in FROM_AUDIT:
            data = event.as_dict()
            data["at"] = max(event.at, started).isoformat()
            found.append(data)
    return found


class Drill(Protocol):
    """What of the runner this needs (``DrillRunner``; no import of it: no cycle)."""

    settings: Settings
    scenario: Scenario


def drill_incident(drill: Drill, report: DrillReport) -> DrillReport:
    """Open, fill and close the drill's incident; return ``report`` (with a line in its
    ``errors`` if that could not be done)."""
    settings, scenario = drill.settings, drill.scenario
    from console.drills.report import drills_dir
    from console.incidents.model import ATTACK_KINDS
    from console.incidents.store import IncidentStore
    from console.incidents.timeline import DRILL_ATTACHMENT

    started = datetime.fromisoformat(report.started_at)
    ended = datetime.fromisoformat(report.ended_at)
    kind = scenario.attack.kind if scenario.attack.kind in ATTACK_KINDS else "unknown"
    store = IncidentStore(settings)
    try:
        incident = store.open(
            title=f"drill {report.scenario}: {report.attacker} against {report.model}",
            severity="critical",
            attack_kind=kind,  # type: ignore[arg-type]
            model=report.model,
            client=report.attacker,
            operator=settings.operator,
            source="drill",
            alert=scenario.detect.alertname,
            drill_id=report.id,
            opened_at=started,
        )
        placed = _scored_times(report)
        events = [
            {
                "at": (started + timedelta(seconds=placed.get(e.kind, e.at_s))).isoformat(),
                "kind": e.kind,
                "detail": e.detail,
                "operator": _operator(e.kind, report, settings.operator),
            }
            for e in report.timeline
        ]
        series = [
            {
                "at": (started + timedelta(seconds=row["at_s"])).isoformat(),
                "values": {k: v for k, v in row.items() if k != "at_s"},
            }
            for row in report.series
        ]
        store.attach(
            incident.id,
            DRILL_ATTACHMENT,
            {
                "drill_id": report.id,
                "scenario": report.scenario,
                "attacker": report.attacker,
                "responder": report.responder,
                "scores": report.scores.as_dict(),
                "report_dir": str(drills_dir(settings) / report.id),
                "events": [*events, *_from_audit(report, started)],
                "series": series,
            },
        )
        store.close(incident.id, settings.operator, "drill finished", at=ended)
    except (ConsoleError, OSError) as exc:
        report.errors.append(f"no incident recorded for the drill: {exc}")
    return report


__all__ = ["drill_incident"]
