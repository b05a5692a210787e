"""The views are declared once (console/views/catalog.py) and everything that names them
derives from that: the number keys, `:name` and its completion, the `?` help, the command
palette, the screens, and `aml-console tui --view`. Each test would fail if one of them went
back to a list of its own. The Pilot tests run on the recorded incident (no lab needed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from import_graph import imports
from support import REPO
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import OptionList, Static
from tui_support import until
from typer.testing import CliRunner

from console.tui.app import COMMANDS, ConsoleApp
from console.tui.help_text import HELP
from console.tui.screens.base import ViewScreen
from console.tui.view_screens import VIEW_SCREENS, ViewCatalogError, match
from console.views.catalog import VIEW_NAMES, VIEWS, ViewDeclaration

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "snapshot_apps"))

from recorded import recorded_app  # noqa: E402

SIZE = (140, 42)


async def shows(pilot: Pilot[Any], name: str, what: str) -> None:
    await until(pilot, lambda: pilot.app.screen.name == name, 5, what)


async def offered(pilot: Pilot[Any], title: str) -> None:
    """Until the palette's highlighted command is ``title``."""

    def highlighted() -> bool:
        options = pilot.app.screen.query_one(OptionList)
        index = options.highlighted
        return index is not None and title in str(options.get_option_at_index(index).prompt)

    await until(pilot, highlighted, 5, f"{title!r} offered")


def test_names_and_keys_each_reach_one_view() -> None:
    assert len(set(VIEW_NAMES)) == len(VIEWS) == len({v.key for v in VIEWS})


def test_every_declared_view_has_its_screen_and_no_screen_is_undeclared() -> None:
    assert list(VIEW_SCREENS) == list(VIEW_NAMES)
    assert all(name == screen.VIEW for name, screen in VIEW_SCREENS.items())


def test_a_mismatch_between_declarations_and_screens_is_refused() -> None:
    class Ghost(ViewScreen[None]):
        VIEW = "ghost"

    class Alerts2(ViewScreen[None]):
        VIEW = "alerts"

    declared = (*VIEWS, ViewDeclaration("metrics", "9", "Metrics"))
    with pytest.raises(ViewCatalogError) as raised:
        match(declared, [*VIEW_SCREENS.values(), Ghost, Alerts2])
    message = str(raised.value)
    assert "view 'metrics' has no screen" in message
    assert "shows view 'ghost', which is not declared" in message
    assert "view 'alerts' has 2 screens" in message
    twice = (*VIEWS, ViewDeclaration("again", "1", "Again"))
    with pytest.raises(ViewCatalogError, match="declared twice: key '1'"):
        match(twice, [*VIEW_SCREENS.values(), Ghost])


def test_number_keys_help_completion_and_palette_come_from_the_declarations() -> None:
    bindings = {b.key: b for b in ConsoleApp.BINDINGS if not isinstance(b, tuple)}
    for view in VIEWS:
        assert bindings[view.key].action == f"view({view.name!r})"
        assert bindings[view.key].description == view.title
        assert f"{view.key} {view.name}" in HELP
        assert view.name in COMMANDS


def test_tui_view_choices_are_the_declared_views() -> None:
    from console.cli.main import app

    shown = CliRunner().invoke(app, ["tui", "--help"], env={"COLUMNS": "260"}).output
    choices = re.search(r"--view\s+<([^>]+)>", shown)
    assert choices is not None, shown
    assert tuple(choices.group(1).split("|")) == VIEW_NAMES


@pytest.mark.parametrize("view", VIEW_NAMES)
def test_tui_view_opens_the_console_on_that_view(
    view: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import console.adapters.backends
    import console.tui.app

    opened: dict[str, Any] = {}

    class Recorder:
        def __init__(self, settings: Any, backends: Any, **options: Any) -> None:
            opened.update(options)

        def run(self) -> None:
            opened["ran"] = True

    import console.cli.tui

    monkeypatch.setattr(console.tui.app, "ConsoleApp", Recorder)
    monkeypatch.setattr(console.adapters.backends, "Backends", lambda *a, **k: None)
    monkeypatch.setattr(console.cli.tui, "require_terminal", lambda command: None)
    from console.cli.main import app

    config = REPO / "configs" / "lab.toml"
    done = CliRunner().invoke(app, ["tui", "--config", str(config), "--view", view])
    assert done.exit_code == 0, done.output
    assert opened["start"] == view and opened["ran"]


def test_tui_help_loads_no_textual() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from console.cli.main import app\n"
        "assert CliRunner().invoke(app, ['tui', '--help']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_plotext')"
        " or m.startswith('console.tui')))\n"
    )
    got = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "[]"


def test_screens_never_import_the_app() -> None:
    """Attributes down, messages up: a screen or widget that imported the app would be back in
    an import cycle with it."""
    found = imports(REPO / "console", "console")
    assert [
        str(edge)
        for edge in found
        if edge.imported == "console.tui.app"
        and edge.importer.startswith(("console.tui.screens", "console.tui.widgets"))
    ] == []


async def test_every_declared_view_by_its_key_by_its_name_in_help_and_palette(
    tmp_path: Path,
) -> None:
    app = recorded_app(tmp_path, "alerts")
    async with app.run_test(size=SIZE) as pilot:
        for view in reversed(VIEWS):  # from the last: each step is a change of view
            await pilot.press(view.key)
            await shows(pilot, view.name, f"key {view.key}")
        for view in VIEWS[1:]:
            await pilot.press("colon", *view.name, "enter")
            await shows(pilot, view.name, f":{view.name}")
        await pilot.press("question_mark")
        shown = str(app.screen.query_one("#help-text", Static).render())
        assert all(f"{view.key} {view.name}" in shown for view in VIEWS)
        await pilot.press("escape")
        for view in VIEWS:
            await pilot.press("ctrl+p")
            await until(pilot, lambda: isinstance(app.screen, CommandPalette), 5, "palette")
            await pilot.press(*f"{view.title} view")  # typed, as a person does
            await offered(pilot, f"{view.title} view")
            await pilot.press("enter")
            await shows(pilot, view.name, f"{view.title} view from the palette")


async def test_a_screen_asks_the_app_by_message_and_the_app_opens_it(tmp_path: Path) -> None:
    """enter on an alert: the Alerts screen posts ShowSamples, the app scopes Samples."""
    app = recorded_app(tmp_path, "alerts")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.view("alerts").refreshes >= 1, 10, "alerts drawn")
        app.screen.query_one("#alerts-table").focus()
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.name == "samples", 5, "the samples view")
        samples = app.view("samples")
        assert (samples.client, samples.model) == ("mallory-1", "digits")  # type: ignore[attr-defined]
        assert app.selection["client"] == "mallory-1"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["tui", "demo"])
def test_without_a_terminal_the_console_says_so_and_exits(command: str) -> None:
    """Piped, the TUI used to write escape codes into the pipe and never exit; the demo
    checks before it starts the lab."""
    done = subprocess.run(
        [sys.executable, "-m", "console", command],
        cwd=REPO,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=50,
        check=False,
    )
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"aml-console {command} needs a terminal" in lines[0], done.stderr
