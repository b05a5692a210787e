"""Snapshots of every view on the recorded incident (tests/snapshot_apps/recorded.py): what an
on-call engineer sees, compared cell by cell with the reviewed SVGs in __snapshots__/.
Update them only after reading the report: `pytest tests/snapshots --snapshot-update`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "snapshot_apps"))

from recorded import RecordedConsoleApp, recorded_app  # noqa: E402

SIZE = (140, 42)
VIEWS = ["alerts", "clients", "models", "mitigations", "audit", "samples", "runbooks", "drills"]


async def _settled(pilot: Pilot[Any]) -> None:
    """Wait until the view on screen has drawn its data and its follow-up loads are done."""
    app = pilot.app
    assert isinstance(app, RecordedConsoleApp)
    view = app.view(app.current)
    for _ in range(200):
        if view.refreshes >= 1:
            break
        await pilot.pause(0.02)
    for _ in range(3):  # follow-up loads (a trace, correlated spans) start after the first draw
        await pilot.pause(0.05)
        await pilot.wait_for_scheduled_animations()
        while any(w.is_running for w in app.workers):
            await pilot.pause(0.02)
    # A DataTable sizes its columns to new rows when its message queue is idle, which on a
    # loaded machine may come after the screenshot: ask every table to measure every cell
    # again (public API), then let the idle passes run.
    for table in app.screen.query(DataTable):
        for row_key in list(table.rows):
            for column_key in list(table.columns):
                table.update_cell(
                    row_key, column_key, table.get_cell(row_key, column_key), update_width=True
                )
    for _ in range(5):
        await pilot.pause(0.05)
    assert view.refreshes >= 1, f"{app.current} never refreshed"


@pytest.mark.parametrize("view", VIEWS)
def test_view(view: str, snap_compare: Any, tmp_path: Path) -> None:
    app = recorded_app(tmp_path, view)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled)


def test_prod_read_only_skin(snap_compare: Any, tmp_path: Path) -> None:
    """prod: the red environment label and the read-only banner on every view."""
    app = recorded_app(tmp_path, "clients", environment="prod", read_only=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled)


def test_runbook_dialog_with_the_plan_asking_to_confirm(snap_compare: Any, tmp_path: Path) -> None:
    """b on a client: the dialog prefilled from the selection (planning needs real systems,
    so this snapshot stops at the form; the Pilot tests on the real stack cover the plan)."""
    app = recorded_app(tmp_path, "clients")

    async def run_before(pilot: Pilot[Any]) -> None:
        await _settled(pilot)
        await pilot.press("b")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help(snap_compare: Any, tmp_path: Path) -> None:
    app = recorded_app(tmp_path, "alerts")

    async def run_before(pilot: Pilot[Any]) -> None:
        await _settled(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
