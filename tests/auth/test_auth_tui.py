"""The TUI's Alerts view on an Alertmanager behind TLS and basic auth: with the right password
its table shows a firing alert; with a wrong one its badge says the credentials were refused,
and never shows the password."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auth_support import AuthServer, auth_console
from support import LabHandle
from textual.pilot import Pilot

from console.adapters.backends import Backends
from console.config import load_settings
from console.tui.app import ConsoleApp


async def until(pilot: Pilot[Any], check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await pilot.pause(0.1)


def _app(lab: LabHandle, tmp_path: Path, section: dict[str, Any]) -> ConsoleApp:
    settings = load_settings(auth_console(lab, tmp_path, {"alertmanager": section}).config_path)
    return ConsoleApp(settings, Backends(settings), start="alerts", refresh_s=0.5)


def _alert_names(app: ConsoleApp) -> list[str]:
    table = app.screen.query_one("#alerts-table")
    rows = [table.get_row_at(i) for i in range(table.row_count)]  # type: ignore[attr-defined]
    return [getattr(row[1], "plain", str(row[1])) for row in rows]


async def test_alerts_view_reads_an_authenticated_alertmanager(
    lab: LabHandle, auth_alertmanager: AuthServer, tmp_path: Path
) -> None:
    name = f"AuthTui{uuid.uuid4().hex[:8]}"
    app = _app(lab, tmp_path, auth_alertmanager.section())
    await app.backends.alertmanager.post_alerts([{"labels": {"alertname": name}}])
    async with app.run_test(size=(150, 45)) as pilot:
        await until(pilot, lambda: name in _alert_names(app), 30, "the posted alert shown")
        assert app.view("alerts").badge.panel.state == "live"
    await app.backends.aclose()


async def test_alerts_badge_shows_the_refused_credentials(
    lab: LabHandle, auth_alertmanager: AuthServer, tmp_path: Path
) -> None:
    app = _app(lab, tmp_path, auth_alertmanager.section(auth="wrong"))
    async with app.run_test(size=(150, 45)) as pilot:
        alerts = app.view("alerts")
        await until(pilot, lambda: alerts.badge.panel.state == "error", 30, "badge in error")
        badge = str(alerts.badge.render())
        assert "ERROR" in badge
        assert f"alertmanager at {auth_alertmanager.url} refused the credentials (401)" in badge
        assert auth_alertmanager.password not in badge
    await app.backends.aclose()
