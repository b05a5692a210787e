"""The Alerts view at fleet scale (issue 14): a flood of throwaway ids each firing its own alert
must not bury the critical one. On an Alertmanager of its own (the session lab's is shared),
250 warnings from ``sybil-N`` clients and one critical: the critical first, a page of 100 and a
"more" row, the count line, sort keys that reverse on a second press, ``/`` over every alert."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from metrics_support import metrics_lab
from support import LabHandle
from textual.widgets import DataTable, Static
from tui.tui_support import make_app, until

from console.errors import ConsoleError
from console.lab import services
from console.tui.screens.alerts import ALERTS_PAGE

SYBILS = 250


@pytest.fixture
def own_alertmanager(tmp_path: Path) -> Iterator[LabHandle]:
    with metrics_lab(tmp_path / "run", ("alertmanager",)) as lab:
        try:
            services.up(lab.settings, ["alertmanager"])
        except ConsoleError as exc:
            pytest.fail(f"alertmanager did not start: {exc}")
        yield lab


def _alert(name: str, severity: str, client: str, minutes_ago: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, "client": client, "model": "digits"},
        "annotations": {"summary": f"{client} under watch"},
        "startsAt": (now - timedelta(minutes=minutes_ago)).isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
    }


async def test_a_flood_of_alerts_is_paged_sorted_and_counted(
    own_alertmanager: LabHandle,
) -> None:
    tag = uuid.uuid4().hex[:6]
    flood = [
        _alert("AMLClientIdSurge", "warning", f"sybil-{i:03d}-{tag}", 1) for i in range(SYBILS)
    ]
    critical = _alert("AMLExtractionSuspected", "critical", f"mallory-{tag}", 3)
    httpx.post(
        f"{own_alertmanager.settings.alertmanager.url}/api/v2/alerts",
        json=[*flood, critical],
        trust_env=False,
    ).raise_for_status()
    app = make_app(own_alertmanager.settings, start="alerts")

    def clients() -> list[str]:
        table = app.screen.query_one("#alerts-table", DataTable)
        return [str(table.get_row_at(i)[2].plain) for i in range(table.row_count)]

    def last_row() -> str:
        table = app.screen.query_one("#alerts-table", DataTable)
        return str(table.get_row_at(table.row_count - 1)[1].plain)

    def count() -> str:
        return str(app.screen.query_one("#alerts-count", Static).render())

    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: f"{SYBILS + 1} alerts" in count(), 30, "every alert counted")
        assert clients()[0] == f"mallory-{tag}"  # the critical one first, however many else
        assert len(clients()) == ALERTS_PAGE + 1 and last_row().startswith("… more")
        assert f"{SYBILS + 1} clients named" in count() and f"{ALERTS_PAGE} listed" in count()
        table = app.screen.query_one("#alerts-table", DataTable)
        table.focus()
        table.move_cursor(row=table.row_count - 1)
        await pilot.press("enter")  # the "more" row
        await until(pilot, lambda: len(clients()) == 2 * ALERTS_PAGE + 1, 5, "the next page")
        await pilot.press("C")  # by client, ascending
        await until(pilot, lambda: clients()[0] == f"mallory-{tag}", 5, "sorted by client")
        await pilot.press("C")  # again: reversed
        await until(pilot, lambda: clients()[0] == f"sybil-249-{tag}", 5, "reversed")
        assert "sorted by client (reversed)" in count()
        await pilot.press("slash", *"sybil-07", "enter")  # over every alert, not the page
        await until(pilot, lambda: len(clients()) == 10, 5, "the filter over every alert")
        assert "/sybil-07: 10 match" in count()
