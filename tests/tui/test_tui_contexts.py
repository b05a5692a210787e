"""`:ctx` switches the console to another context of the config file, as k9s does: the label,
its colour and read-only follow the context, every panel reads through the new context's
clients, and a run in progress blocks the switch."""

from __future__ import annotations

from pathlib import Path

from lab_stack import LabStack
from support import free_port
from textual.widgets import OptionList
from tui_support import stack_app, until

from console.config import load_settings
from console.tui.context import Contexts
from console.tui.screens.base import TopBar
from console.tui.screens.contexts import ContextsScreen
from console.tui.screens.runbook import RunbookScreen


def _contexts_file(tmp_path: Path, stack: LabStack) -> Path:
    """Two contexts: ``stack`` (the test stack's Prometheus) and ``prod`` (read-only, red, a
    Prometheus that is not listening)."""
    path = tmp_path / "contexts.toml"
    path.write_text(
        f"""\
current_context = "stack"
[contexts.stack]
environment = "lab"
[contexts.stack.prometheus]
url = "{stack.settings.prometheus.url}"

[contexts.prod]
environment = "prod"
read_only = true
run_dir = "{tmp_path / "prod-state"}"
[contexts.prod.prometheus]
url = "http://127.0.0.1:{free_port()}"
"""
    )
    return path


def _topbar(app: object) -> str:
    return str(app.screen.query_one(TopBar).render())  # type: ignore[attr-defined]


async def test_ctx_switches_label_read_only_and_clients(tui_stack: LabStack, tmp_path: Path):
    config = _contexts_file(tmp_path, tui_stack)
    contexts = Contexts(
        names=lambda: ["stack", "prod"], open=lambda name: load_settings(config, name)
    )
    app = stack_app(tui_stack, start="clients", contexts=contexts)
    async with app.run_test(size=(140, 40)) as pilot:
        clients = app.view("clients")
        await until(pilot, lambda: clients.badge.panel.state == "live", 60, "clients live")
        assert "READ-ONLY" not in _topbar(app)

        await pilot.press("colon")
        await pilot.press(*"ctx", "enter")
        await until(pilot, lambda: isinstance(app.screen, ContextsScreen), 10, "the list")
        listed = app.screen.query_one(OptionList)
        assert [str(listed.get_option_at_index(i).prompt) for i in range(2)] == [
            "  stack",
            "  prod",
        ]  # the stack's own context is named "test", so neither is marked current
        await pilot.press("escape")

        old_backends = app.backends
        await pilot.press("colon")
        await pilot.press(*"ctx prod", "enter")
        await until(pilot, lambda: app.settings.context == "prod", 10, "switched")
        assert app.backends is not old_backends
        assert app.backends.settings.prometheus.url.endswith(
            config.read_text().rsplit(":", 1)[1].strip().strip('"')
        )
        await until(pilot, lambda: "prod" in _topbar(app), 10, "the prod label")
        assert "READ-ONLY" in _topbar(app)
        prod_clients = app.view("clients")
        assert prod_clients is not clients
        await until(
            pilot, lambda: prod_clients.badge.panel.state != "live", 30, "prod's Prometheus down"
        )
        assert "127.0.0.1" in str(prod_clients.badge.render())


async def test_a_run_in_progress_blocks_the_switch(tui_stack: LabStack, tmp_path: Path):
    config = _contexts_file(tmp_path, tui_stack)
    contexts = Contexts(
        names=lambda: ["stack", "prod"], open=lambda name: load_settings(config, name)
    )
    app = stack_app(tui_stack, start="clients", contexts=contexts)
    async with app.run_test(size=(140, 40)) as pilot:
        app.open_runbook("block-client", {"client": "ctx-test"})
        await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 10, "dialog")
        dialog = app.screen
        assert isinstance(dialog, RunbookScreen)
        dialog.running = True  # what the dialog sets while its run applies
        app.switch_context("prod")
        await pilot.pause(0.2)
        assert app.settings.context != "prod" and app.screen is dialog
        dialog.running = False
        app.switch_context("prod")
        await until(pilot, lambda: app.settings.context == "prod", 10, "switched after")
        assert not isinstance(app.screen, RunbookScreen)  # a dialog of the old context closes
