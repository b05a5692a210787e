"""``aml-console lab up|down|status``: the embedded lab's real services on loopback."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from console.cli.common import OutputFormat, OutputOption, context, emit, errors_as_exit, safe
from console.cli.common import stdout as out

if TYPE_CHECKING:  # the launcher imports httpx; keep `--help` light
    from console.lab.seed import SeededModel
    from console.lab.services import ServiceStatus

app = typer.Typer(
    help="Start, stop and inspect the lab's services (Redis, MLflow, Alertmanager, Prometheus).",
    no_args_is_help=True,
)

ServicesOption = typer.Option(
    None,
    "--services",
    "-s",
    help="Comma-separated subset of redis,mlflow,alertmanager,prometheus "
    "(up: default lab.services; down/status: default all).",
)


def _names(services: str | None) -> list[str] | None:
    if services is None:
        return None
    return [n.strip() for n in services.split(",") if n.strip()]


@app.command()
def up(
    ctx: typer.Context,
    services: str | None = ServicesOption,
    seed: bool = typer.Option(
        True, "--seed/--no-seed", help="Register the seed model when MLflow is started."
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Start services (reusing those already running), wait until they answer, seed MLflow."""
    with errors_as_exit():
        from console.lab import services as launcher

        result = launcher.up(context(ctx).settings, _names(services), seed=seed)

    def render() -> None:
        _render_services(result.services)
        if result.seeded is not None:
            _render_seeded(result.seeded)

    emit(result.as_dict(), output, render)


@app.command()
def down(
    ctx: typer.Context,
    services: str | None = ServicesOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Stop services (their whole process groups) and remove their pid files."""
    with errors_as_exit():
        from console.lab import services as launcher

        result = launcher.down(context(ctx).settings, _names(services))
    emit([s.as_dict() for s in result], output, lambda: _render_services(result))


@app.command()
def status(
    ctx: typer.Context,
    services: str | None = ServicesOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Show each service: url, port, pid and state (running, stopped, dead)."""
    with errors_as_exit():
        from console.lab import services as launcher

        result = launcher.status(context(ctx).settings, _names(services))
    emit([s.as_dict() for s in result], output, lambda: _render_services(result))


_STATE_STYLE = {"running": "green", "stopped": "dim", "dead": "bold red"}


def _render_services(statuses: list[ServiceStatus]) -> None:
    table = Table("service", "url", "port", "pid", "state", title="lab services")
    for s in statuses:
        style = _STATE_STYLE.get(s.state, "")
        table.add_row(
            safe(s.name),
            safe(s.url),
            str(s.port),
            str(s.pid or "-"),
            f"[{style}]{safe(s.state)}[/]" if style else safe(s.state),
        )
    out.print(table)


def _render_seeded(model: SeededModel) -> None:
    table = Table(
        "version",
        "aliases",
        "kind",
        "accuracy",
        "onnx_sha256",
        title=f"registry model {safe(model.name)}",
    )
    for v in model.versions:
        aliases = [
            a
            for a, n in (("champion", model.champion), ("previous", model.previous))
            if n == v.version
        ]
        table.add_row(
            safe(v.version),
            safe(", ".join(aliases)),
            safe(v.kind),
            f"{v.accuracy:.3f}",
            safe(v.sha256[:16]) + "…",
        )
    out.print(table)
