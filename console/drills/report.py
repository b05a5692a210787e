"""A drill's report files: the timeline, the scores, the per-second request series, the attack's
own report and the audit records of the run (``report_data.py``), kept in
``<run_dir>/drills/<id>/`` (report.json, audit.jsonl, series.csv, chart.png) so runs can be
compared over time (``drill history``)."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.config import Settings
from console.drills.chart import draw_chart
from console.drills.report_data import DrillReport, DrillScores, TimelineEvent
from console.errors import DrillError


def drills_dir(settings: Settings) -> Path:
    return settings.run_dir / "drills"


def write_report(settings: Settings, report: DrillReport) -> Path:
    """Write the report's files; the chart is best effort (a report without it is whole)."""
    folder = drills_dir(settings) / report.id
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic(folder / "report.json", json.dumps(report.as_dict(), indent=2, default=str))
        _atomic(
            folder / "audit.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in report.audit)
        )
        _write_series(folder / "series.csv", report.series)
    except OSError as exc:
        reason = exc.strerror or exc
        raise DrillError(f"cannot write the drill report to {folder}: {reason}") from None
    try:
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


__all__ = [
    "DrillReport",
    "DrillScores",
    "PastDrill",
    "TimelineEvent",
    "drills_dir",
    "history",
    "load_report",
    "write_report",
]
