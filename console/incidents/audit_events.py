"""An incident's events from the audit log: the runbook runs on its client or model while it
was open (from an hour before it was opened to its close), with their operators, the
mitigating steps, promotions (which version became champion, and the figures the robustness
gate passed), evidence captures, replays and approvals, and its own notes.

Records are read, never trusted for layout: runbook names, targets and notes are shown by the
exporters, which escape them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from console.incidents.model import Incident, IncidentEvent, utc

if TYPE_CHECKING:
    from console.audit.records import AuditRecord

LOOKBACK = timedelta(hours=1)
"""Runs this long before an incident was opened belong to it (the alert came first)."""
MITIGATING_ACTIONS = (
    "policy.block_client",
    "policy.set_budget",
    "registry.rollback",
    "registry.set_alias",
)
"""The same as ``console.drills.runner.MITIGATING_ACTIONS``: actions that stop an attacker or
undo its effect (evidence capture and silences do not). A drill's time to mitigate and an
incident's are the same figure."""
PROMOTE_ACTION = "registry.promote"
"""A promotion is a registry change of its own kind (``promotion``), not a mitigation: it
puts a new version in service (what a poisoning incident may be about) rather than stopping
an attacker, and a drill does not count it either."""
EVIDENCE_ACTION = "evidence.capture"
DETAIL_MAX = 300


def window(incident: Incident, now: datetime) -> tuple[datetime, datetime]:
    """From an hour before the incident was opened to its close (or ``now``)."""
    end = incident.closed_at or utc(now)
    return incident.opened_at - LOOKBACK, max(end, incident.opened_at)


def _clip(text: Any, limit: int = DETAIL_MAX) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def relevant(
    records: Iterable[AuditRecord], incident: Incident, start: datetime, end: datetime
) -> list[AuditRecord]:
    """The incident's own records, and those on its targets inside the window (with every
    record of a run that has one there: its approvals, its outcome a little after the close)."""
    targets = incident.targets()
    listed = list(records)
    runs = {
        r.run_id
        for r in listed
        if r.target in targets and start <= r.time <= end and r.runbook != "incident"
    }
    return [
        r
        for r in listed
        if r.run_id == incident.id or (r.run_id in runs and start <= r.time <= end + LOOKBACK)
    ]


def to_event(record: AuditRecord) -> IncidentEvent | None:
    """One record as a timeline event; None for those a timeline leaves out (intents of
    steps, the incident's own open and close, which the incident file holds)."""
    kind, who = record.kind, record.operator
    run = f"{record.runbook} run {record.run_id}"
    if kind == "incident-note":
        return IncidentEvent(record.time, "note", _clip(record.arguments.get("text"), 2000), who)
    if kind == "run-intent":
        params = ", ".join(f"{k}={_clip(v, 80)}" for k, v in sorted(record.arguments.items()))
        detail = f"{run} on {record.target}" + (f" ({params})" if params else "")
        return IncidentEvent(record.time, "run", _clip(detail), who)
    if kind == "run-outcome":
        error = f": {record.error}" if record.error else ""
        return IncidentEvent(
            record.time, "run-finished", _clip(f"{run}: {record.result}{error}"), who
        )
    if kind.startswith("approval-"):
        verb = kind.removeprefix("approval-")
        return IncidentEvent(record.time, "approval", _clip(f"{verb}: {run}"), who)
    if kind == "compensate-outcome":
        step = f"{record.runbook}/{record.step} {record.action}"
        return IncidentEvent(record.time, "compensated", _clip(f"{step}: {record.result}"), who)
    if kind != "step-outcome":
        return None
    step = f"{record.runbook}/{record.step} {record.action}"
    if record.result == "ok" and record.action in MITIGATING_ACTIONS:
        detail = f"{step} by {who} (run {record.run_id})"
        return IncidentEvent(record.time, "mitigation", _clip(detail), who)
    if record.action == PROMOTE_ACTION and record.result in ("ok", "noop"):
        return IncidentEvent(record.time, "promotion", _clip(_promotion(record, step)), who)
    if record.action == EVIDENCE_ACTION and isinstance(record.after, dict):
        folder = record.after.get("folder")
        files = sorted((record.after.get("files") or {}).keys())
        detail = f"{folder} ({', '.join(files) or 'no files'}; run {record.run_id})"
        return IncidentEvent(record.time, "evidence", _clip(detail), who)
    if (record.action or "").startswith("replay") and isinstance(record.after, dict):
        verdict = record.after.get("verdict", record.result)
        return IncidentEvent(record.time, "replay", _clip(f"{step}: {verdict}"), who)
    return IncidentEvent(record.time, "step", _clip(f"{step}: {record.result}"), who)


def _figure(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _promotion(record: AuditRecord, step: str) -> str:
    """``promote-model/promote registry.promote: digits v3 -> champion (v2 -> previous);
    gate passed: clean_accuracy 0.970, max_adversarial_success 0.320 (run r-1, by alice)``."""
    before = record.before if isinstance(record.before, dict) else {}
    after = record.after if isinstance(record.after, dict) else {}
    model, version = after.get("model", "?"), after.get("champion", "?")
    if record.result == "noop":
        move = f"{model} v{version} already champion"
    else:
        old = before.get("champion")
        move = f"{model} v{version} -> champion" + (f" (v{old} -> previous)" if old else "")
    robustness = after.get("robustness")
    figures = robustness.get("candidate") if isinstance(robustness, dict) else None
    passed = ""
    if isinstance(figures, dict) and figures.get("evaluated"):
        passed = (
            f"; gate passed: clean_accuracy {_figure(figures.get('clean_accuracy'))}, "
            f"max_adversarial_success {_figure(figures.get('max_adversarial_success'))}"
        )
    return f"{step}: {move}{passed} (run {record.run_id}, by {record.operator})"


def audit_events(
    records: Iterable[AuditRecord], incident: Incident, now: datetime
) -> list[IncidentEvent]:
    start, end = window(incident, now)
    events = [to_event(r) for r in relevant(records, incident, start, end)]
    return [e for e in events if e is not None]


__all__ = [
    "LOOKBACK",
    "MITIGATING_ACTIONS",
    "PROMOTE_ACTION",
    "audit_events",
    "relevant",
    "to_event",
    "window",
]
