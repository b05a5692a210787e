"""``aml-console tui``: the on-call views in the terminal."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from console.cli.common import context, errors_as_exit
from console.views.catalog import VIEW_NAMES

# From the declarations: mypy cannot see members made at run time (Typer can), hence the ignore.
View = StrEnum("View", {name: name for name in VIEW_NAMES})  # type: ignore[misc]


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
        None, "--refresh", min=0.5, max=300,
        help="Seconds between refreshes of a view (default: [tui] refresh_s, 2 s).",
    ),
    metrics: Engine = typer.Option(
        Engine.prometheus, "--metrics", help="Query engine: prometheus or victoria-metrics."
    ),
) -> None:
    """Open the console: alerts, clients, models, mitigations and audit, with runbooks one key
    away. `?` lists the keys; `q` quits."""
    with errors_as_exit():
        cli = context(ctx)
        if config is not None:
            cli.config_path = config
        if read_only:
            cli.read_only = True
        settings = cli.settings
        from console.adapters.backends import Backends
        from console.tui.app import ConsoleApp

        app = ConsoleApp(
            settings,
            Backends(settings, metrics=metrics.value),
            start=view.value,
            refresh_s=refresh or settings.tui.refresh_s,
        )
    app.run()
