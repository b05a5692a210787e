"""A drill's report: the timeline, the scores, the per-second request series, the attack's own
report and the audit records of the run, kept in ``<run_dir>/drills/<id>/`` (report.json,
audit.jsonl, series.csv, chart.png) so runs can be compared over time (``drill history``)."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from console.config import Settings
from console.errors import DrillError


@dataclass(frozen=True)
class TimelineEvent:
    at_s: float
    """Seconds since the drill started."""
    kind: str
    """drill-start, attack-launched, first-request, alert-firing, false-alert,
    response-started, response-finished, mitigation, contained, attack-finished, drill-end."""
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
        return {"id": self.id, "scenario": self.scenario, "responder": self.responder,
                "attacker": self.attacker, "model": self.model, **self.scores.as_dict(),
                "report_dir": ""}  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "scenario": self.scenario, "responder": self.responder,
            "attacker": self.attacker, "model": self.model, "started_at": self.started_at,
            "ended_at": self.ended_at, "scores": self.scores.as_dict(),
            "timeline": [asdict(e) for e in self.timeline], "series": self.series,
            "attack_reports": self.attack_reports, "errors": self.errors,
        }  # fmt: skip


def drills_dir(settings: Settings) -> Path:
    return settings.run_dir / "drills"


def write_report(settings: Settings, report: DrillReport) -> Path:
    """Write the report's files; the chart is best effort (a report without it is whole)."""
    folder = drills_dir(settings) / report.id
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic(folder / "report.json", json.dumps(report.as_dict(), indent=2, default=str))
        _atomic(folder / "audit.jsonl",
                "".join(json.dumps(r, default=str) + "\n" for r in report.audit))  # fmt: skip
        _write_series(folder / "series.csv", report.series)
    except OSError as exc:
        reason = exc.strerror or exc
        raise DrillError(f"cannot write the drill report to {folder}: {reason}") from None
    try:
        from console.drills.chart import draw_chart

        draw_chart(report, folder / "chart.png")
    except Exception as exc:  # noqa: BLE001 - the chart must not lose the report
        (folder / "chart.error").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
    return folder


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _write_series(path: Path, series: list[dict[str, float]]) -> None:
    columns = sorted({k for row in series for k in row if k != "at_s"})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["at_s", *columns])
        for row in series:
            writer.writerow([row.get("at_s", 0.0), *(row.get(c, 0.0) for c in columns)])


@dataclass(frozen=True)
class PastDrill:
    id: str
    path: Path
    data: dict[str, Any] | None
    """report.json; None if unreadable (``problem`` says why)."""
    problem: str | None = None


def history(settings: Settings) -> list[PastDrill]:
    """Every drill report, newest first; unreadable ones are listed with the reason."""
    root = drills_dir(settings)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        try:
            data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("scores"), dict):
                raise ValueError("not a drill report")
            found.append(PastDrill(folder.name, folder, data))
        except (OSError, ValueError) as exc:
            found.append(PastDrill(folder.name, folder, None, str(exc)))
    return found


def load_report(settings: Settings, drill_id: str) -> PastDrill:
    for past in history(settings):
        if past.id == drill_id or past.id.startswith(drill_id):
            return past
    where = drills_dir(settings)
    raise DrillError(f"no drill report {drill_id!r} under {where} (see `drill history`)")
