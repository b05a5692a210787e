"""``aml-console tui``: the on-call views in the terminal."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from console.cli.common import context, errors_as_exit
from console.errors import ConfigError
from console.views.catalog import VIEW_NAMES

# From the declarations: mypy cannot see members made at run time (Typer can), hence the ignore.
View = StrEnum("View", {name: name for name in VIEW_NAMES})  # type: ignore[misc]


def require_terminal(command: str) -> None:
    """Refuse to draw a TUI into a pipe or a file: it would write escape codes there and wait
    for keys that never come."""
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise ConfigError(
            f"aml-console {command} needs a terminal (stdin and stdout); for scripts use "
            "the headless commands (runbook, audit, replay, drill, lab status -o json)"
        )


class Engine(StrEnum):
    prometheus = "prometheus"
    victoria_metrics = "victoria-metrics"


def tui(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="TOML config (same as the global --config)."
    ),
    read_only: bool = typer.Option(
        False, "--read-only", help="Show everything, apply nothing (a banner says so)."
    ),
    view: View = typer.Option(View("alerts"), "--view", help="The view to open on."),
    refresh: float | None = typer.Option(
        None,
        "--refresh",
        min=0.5,
        max=300,
        help="Seconds between refreshes of a view (default: [tui] refresh_s, 2 s).",
    ),
    metrics: Engine = typer.Option(
        Engine.prometheus, "--metrics", help="Query engine: prometheus or victoria-metrics."
    ),
) -> None:
    """Open the console: alerts, clients, models, mitigations and audit, with runbooks one key
    away. `?` lists the keys; `q` quits."""
    with errors_as_exit():
        require_terminal("tui")
        cli = context(ctx)
        if config is not None:
            cli.config_path = config
        if read_only:
            cli.read_only = True
        settings = cli.settings
        from console.adapters.backends import Backends
        from console.tui.app import ConsoleApp
        from console.tui.context import Contexts

        app = ConsoleApp(
            settings,
            Backends(settings, metrics=metrics.value),
            start=view.value,
            refresh_s=refresh or settings.tui.refresh_s,
            contexts=Contexts(names=cli.context_names, open=cli.settings_of),
        )
    app.run()
