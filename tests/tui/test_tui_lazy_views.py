"""The console starts with the first view's code only: the other views' screens are imported
and made when first shown, and a refresh reaches only the views made so far. The Pilot tests
run on the recorded incident (tests/snapshot_apps/recorded.py, no lab needed)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import REPO
from textual.widgets import Static
from tui_support import until

from console.adapters.prometheus import QueryResult
from console.tui.context import Contexts
from console.tui.screens.base import ViewScreen
from console.tui.view_screens import (
    VIEW_SCREENS,
    ViewCatalogError,
    all_view_screens,
    match,
    screen_class,
)
from console.views.catalog import VIEW_NAMES, VIEWS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "snapshot_apps"))

from recorded import recorded_app  # noqa: E402

SIZE = (140, 42)

_STARTS_THEN_SWITCHES = """
import asyncio, json, sys, tempfile
from pathlib import Path
sys.path[:0] = [{snapshot_apps!r}, {tests!r}]
from recorded import recorded_app
from console.views.catalog import VIEW_NAMES

SCREENS = {{f"console.tui.screens.{{name}}" for name in VIEW_NAMES}}
SCREENS |= {{"console.tui.screens.runbook", "console.tui.screens.dialogs"}}

def loaded():
    return sorted(m for m in sys.modules if m in SCREENS)

async def main():
    out = {{"imported": loaded()}}
    app = recorded_app(Path(tempfile.mkdtemp()), "alerts")
    async with app.run_test(size=(140, 42)) as pilot:
        while app.view("alerts").refreshes < 1:
            await pilot.pause(0.05)
        out["started"], out["made"] = loaded(), sorted(app.made_views)
        await pilot.press("4")
        while app.screen.name != "mitigations" or app.view("mitigations").refreshes < 1:
            await pilot.pause(0.05)
        out["switched"], out["made_after"] = loaded(), sorted(app.made_views)
    print(json.dumps(out))

asyncio.run(main())
"""


def test_the_console_starts_with_the_first_views_screen_only() -> None:
    code = _STARTS_THEN_SWITCHES.format(
        snapshot_apps=str(REPO / "tests" / "snapshot_apps"), tests=str(REPO / "tests")
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["imported"] == []  # importing the app imports no view's screen
    assert out["started"] == ["console.tui.screens.alerts"]
    assert out["made"] == ["alerts"]
    assert out["switched"] == ["console.tui.screens.alerts", "console.tui.screens.mitigations"]
    assert out["made_after"] == ["alerts", "mitigations"]


def test_each_declared_view_has_its_screen_in_its_own_module() -> None:
    assert all_view_screens() == VIEW_SCREENS
    for name in VIEW_NAMES:
        assert screen_class(name) is VIEW_SCREENS[name]
        assert screen_class(name).__module__ == f"console.tui.screens.{name}"
    with pytest.raises(ViewCatalogError, match="'ghost' is not declared"):
        screen_class("ghost")


def test_a_screen_outside_its_views_module_is_refused() -> None:
    class Audit(ViewScreen[None]):
        VIEW = "audit"

    others = [screen for name, screen in VIEW_SCREENS.items() if name != "audit"]
    with pytest.raises(ViewCatalogError, match="is not in console.tui.screens.audit"):
        match(VIEWS, [*others, Audit])


async def test_a_refresh_reaches_only_the_views_made_so_far(tmp_path: Path) -> None:
    app = recorded_app(tmp_path, "models")
    async with app.run_test(size=SIZE) as pilot:
        models = app.view("models")
        await until(pilot, lambda: models.refreshes >= 1, 10, "models drawn")
        assert list(app.made_views) == ["models"]
        app.refresh_views()
        await until(pilot, lambda: models.refreshes >= 2, 10, "models refreshed")
        assert list(app.made_views) == ["models"]
        await pilot.press("5")
        audit = app.view("audit")
        await until(pilot, lambda: audit.refreshes >= 1, 10, "audit drawn on first show")
        app.refresh_views()
        await until(pilot, lambda: models.refreshes >= 3 and audit.refreshes >= 2, 10, "both")
        assert sorted(app.made_views) == ["audit", "models"]


async def test_the_first_views_frame_is_drawn_before_its_first_refresh_returns(
    tmp_path: Path,
) -> None:
    app = recorded_app(tmp_path, "models")
    prometheus = app.backends.prometheus
    release = asyncio.Event()
    real_query = prometheus.query

    async def held(expr: str, time: Any = None) -> QueryResult:
        await release.wait()
        return await real_query(expr, time)

    prometheus.query = held  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        models = app.view("models")
        await until(pilot, lambda: app.screen is models, 10, "the models screen")
        await pilot.pause(0.2)
        assert models.refreshes == 0  # the refresh is still waiting for the query engine
        topbar = str(models.query_one("#topbar", Static).render())
        assert "aml-console › models" in topbar
        release.set()
        await until(pilot, lambda: models.refreshes >= 1, 10, "models drawn")
        assert models.query_one("#models-table").row_count >= 1  # type: ignore[attr-defined]


async def test_a_context_switch_drops_the_views_made_on_the_old_context(tmp_path: Path) -> None:
    app = recorded_app(tmp_path, "models")
    base = app.settings
    app.contexts = Contexts(
        names=lambda: ["recorded", "other"],
        open=lambda name: base.model_copy(update={"context": name}),
    )
    async with app.run_test(size=SIZE) as pilot:
        models = app.view("models")
        await until(pilot, lambda: models.refreshes >= 1, 10, "models drawn")
        await pilot.press("5")
        audit = app.view("audit")
        await until(pilot, lambda: audit.refreshes >= 1, 10, "audit drawn")
        old_backends = app.backends

        app.switch_context("other")
        await until(pilot, lambda: app.screen.name == "audit", 10, "audit on the new context")
        new_audit = app.view("audit")
        await until(pilot, lambda: new_audit.refreshes >= 1, 10, "audit drawn again")
        assert new_audit is not audit and new_audit.context.backends is app.backends
        assert app.backends is not old_backends
        assert list(app.made_views) == ["audit"]  # the others are made when next shown
        await until(pilot, lambda: not models.is_attached, 10, "the old models view dropped")
        assert not audit.is_attached
        await pilot.press("3")
        new_models = app.view("models")
        await until(pilot, lambda: new_models.refreshes >= 1, 10, "models on the new context")
        assert new_models is not models and new_models.context.backends is app.backends
