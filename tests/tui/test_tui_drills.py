"""Drills view: past drills from their reports (written by the drill's own writer), newest
first, reached with 8; the selected one's timeline and scores; an unreadable report listed with
a warning instead of hiding the others."""

from __future__ import annotations

from pathlib import Path

from lab_stack import LabStack
from textual.widgets import Static
from tui_support import cells, make_app, until

from console.drills.report import DrillReport, DrillScores, TimelineEvent, write_report


def _report(drill_id: str, contained: bool, detect: float) -> DrillReport:
    return DrillReport(
        id=drill_id,
        scenario="extraction",
        responder="auto",
        attacker="mallory-1-abc123",
        model="digits",
        started_at="2026-12-01T03:00:00+00:00",
        ended_at="2026-12-01T03:01:00+00:00",
        scores=DrillScores(
            contained=contained,
            time_to_detect_s=detect,
            time_to_mitigate_s=24.0,
            time_to_contain_s=25.0,
            detect_to_mitigate_s=0.5,
            detection_floor_s=25.0,
            attacker_queries_answered=700,
            attacker_success=0.5,
            attacker_success_metric="surrogate_agreement",
            benign_blocked=0,
            benign_error_rate=0.0,
            false_alerts=0,
        ),
        timeline=[
            TimelineEvent(9.5, "first-request", "14 requests at the gateway"),
            TimelineEvent(32.5, "alert-firing", "AMLExtractionSuspected"),
        ],
        series=[{"at_s": 1.0, "mallory-1-abc123": 30.0}],
    )


async def test_drills_view_lists_reports_newest_first(tui_stack: LabStack, tmp_path: Path) -> None:
    settings = tui_stack.settings.model_copy(update={"run_dir": tmp_path / "run"})
    write_report(settings, _report("20261201T030000-extraction-aaaaaa", True, 23.5))
    write_report(settings, _report("20261201T040000-extraction-bbbbbb", False, 31.0))
    broken = settings.run_dir / "drills" / "20261201T050000-broken-cccccc"
    broken.mkdir(parents=True)
    (broken / "report.json").write_text("{not json", encoding="utf-8")
    app = make_app(settings, start="alerts")
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.press("8")
        await until(
            pilot,
            lambda: app.screen.name == "drills" and len(cells(app, "#drills-table")) == 3,
            10,
            "three drills listed",
        )
        rows = cells(app, "#drills-table")
        assert [r[0] for r in rows] == [
            "20261201T050000-broken-cccccc",
            "20261201T040000-extraction-bbbbbb",
            "20261201T030000-extraction-aaaaaa",
        ]
        assert rows[1][3] == "NO" and rows[2][3] == "yes"
        assert rows[2][4] == "23.5 s"
        assert any("unreadable" in w for w in app.view("drills").badge.panel.warnings)
        table = app.screen.query_one("#drills-table")
        table.move_cursor(row=2)  # type: ignore[attr-defined]
        await pilot.pause(0.2)
        timeline = str(app.screen.query_one("#drill-timeline", Static).render())
        assert "alert-firing" in timeline and "mallory-1-abc123" in timeline
