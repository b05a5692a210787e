"""What a drill produced, as plain data: its timeline, its scores and the report that holds
them with the per-second series, the attack reports and the audit records. Written to files by
``report.py``, drawn by ``chart.py``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TimelineEvent:
    at_s: float
    """Seconds since the drill started."""
    kind: str
    """drill-start, attack-launched, first-request, alert-firing, false-alert,
    response-started, response-finished, mitigation, contained, attack-finished, drill-end;
    gate-refused, gate-allowed, gate-error (a scenario's ``gate:`` check); served-version (the
    gateway serves another version of the model)."""
    detail: str = ""


@dataclass(frozen=True)
class DrillScores:
    contained: bool
    time_to_detect_s: float | None
    """First attacker request answered by the gateway -> the expected alert seen firing in
    Alertmanager (M9)."""
    time_to_mitigate_s: float | None
    """First attacker request -> the first mitigation's outcome record in the audit log."""
    time_to_contain_s: float | None
    detect_to_mitigate_s: float | None
    detection_floor_s: float | None
    """Scrape interval + rule evaluation interval + the alert's ``for:``."""
    attacker_queries_answered: int
    """Attacker requests the gateway answered (200) before containment (or the end)."""
    attacker_success: float | None
    attacker_success_metric: str
    benign_blocked: int
    benign_error_rate: float | None
    false_alerts: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DrillReport:
    id: str
    scenario: str
    responder: str
    attacker: str
    model: str
    started_at: str
    ended_at: str
    scores: DrillScores
    timeline: list[TimelineEvent]
    series: list[dict[str, float]] = field(default_factory=list)
    """One row a second: ``at_s`` and each client's requests per second at the gateway."""
    attack_reports: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The flat keys a script reads (``drill run --output json``)."""
        return {
            "id": self.id,
            "scenario": self.scenario,
            "responder": self.responder,
            "attacker": self.attacker,
            "model": self.model,
            **self.scores.as_dict(),
            "report_dir": "",
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scenario": self.scenario,
            "responder": self.responder,
            "attacker": self.attacker,
            "model": self.model,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "scores": self.scores.as_dict(),
            "timeline": [asdict(e) for e in self.timeline],
            "series": self.series,
            "attack_reports": self.attack_reports,
            "errors": self.errors,
        }
