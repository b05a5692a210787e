"""Top-level Typer app: global options and the command groups."""

from __future__ import annotations

from pathlib import Path

import typer

from console import __version__
from console.cli.common import CliContext
from console.cli.exits import ConsoleGroup

app = typer.Typer(
    cls=ConsoleGroup,
    name="aml-console",
    help="On-call console for machine-learning models under attack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aml-console {__version__}")
        raise typer.Exit()


def _operator(value: str | None) -> str | None:
    """``--operator`` as given; a blank one is an error, not "use the default"."""
    if value is not None and (not value.strip() or len(value) > 128 or not value.isprintable()):
        raise typer.BadParameter("must be 1-128 printable characters, not blank")
    return value


@app.callback()
def main(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="TOML config (default: $CONSOLE_CONFIG, else $XDG_CONFIG_HOME/aml-console/"
        "config.toml, else the built-in lab).",
    ),
    context_name: str | None = typer.Option(
        None,
        "--context",
        help="Context of the config to use (default: $CONSOLE_CONTEXT, else its current one).",
    ),
    read_only: bool = typer.Option(
        False, "--read-only", help="Refuse every action; plans and dry runs still work."
    ),
    operator: str | None = typer.Option(
        None, "--operator", callback=_operator, help="Who acts (audit records)."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True),
) -> None:
    ctx.obj = CliContext(
        config_path=config, context=context_name, read_only=read_only, operator=operator
    )


def _register() -> None:
    from console.cli import audit, config, demo, drill, lab, replay, runbook, tui

    app.add_typer(config.app, name="config")
    app.add_typer(lab.app, name="lab")
    app.add_typer(runbook.app, name="runbook")
    app.add_typer(audit.app, name="audit")
    app.add_typer(drill.app, name="drill")
    app.command("tui")(tui.tui)
    app.command("demo")(demo.demo)
    app.command("replay")(replay.replay)
    from console.cli import doctor, get, policy, rules

    app.command("doctor")(doctor.doctor)
    app.add_typer(get.app, name="get")
    app.add_typer(rules.app, name="rules")
    app.add_typer(policy.app, name="policy")
    from console.cli import incident

    app.add_typer(incident.app, name="incident")
    from console.cli import approvals

    app.command("approvals")(approvals.list_approvals)
    app.command("approve")(approvals.approve)
    app.command("deny")(approvals.deny)
    from console.cli import eval as eval_cli

    app.command("eval")(eval_cli.evaluate)
    from console.cli import model

    app.add_typer(model.app, name="model")


_register()


def run() -> None:  # pragma: no cover - the console script
    """The ``aml-console`` script: errors and exit codes are ``ConsoleGroup``'s
    (console/cli/exits.py), the same under ``python -m console``."""
    app()
