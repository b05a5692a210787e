"""The postmortem as JSON for scripts: each figure under its own key (``time_to_detect_s``,
``time_to_mitigate_s``, ``time_to_contain_s``), the incident's fields, the timeline, what was
done, notes, evidence, replays and what could not be read."""

from __future__ import annotations

import json
from typing import Any

from console.incidents.model import IncidentEvent
from console.incidents.postmortem import Postmortem


def _events(events: list[IncidentEvent]) -> list[dict[str, Any]]:
    return [e.as_dict() for e in events]


def postmortem_dict(pm: Postmortem) -> dict[str, Any]:
    return {
        "incident": pm.incident.model_dump(mode="json"),
        **pm.times.as_dict(),
        "summary": pm.summary(),
        "moments": [
            {
                "label": m.label,
                "at": m.at.isoformat() if m.at else None,
                "seconds": m.seconds,
                "figure": m.figure or None,
            }
            for m in pm.moments
        ],
        "timeline": _events(pm.events),
        "actions": _events(pm.actions),
        "notes": _events(pm.notes),
        "evidence": _events(pm.evidence),
        "replays": _events(pm.replays),
        "missing": pm.missing,
        "recurrence": pm.recurrence,
        "drill": pm.drill,
        "chart": pm.chart,
        "chart_problem": pm.chart_problem,
        "generated_at": pm.generated_at.isoformat() if pm.generated_at else None,
    }


def render_json(pm: Postmortem) -> str:
    return json.dumps(postmortem_dict(pm), indent=2, default=str, ensure_ascii=True) + "\n"


__all__ = ["postmortem_dict", "render_json"]
