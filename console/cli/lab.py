"""``aml-console lab up|down|status|traffic|attack``: the embedded lab's real services on
loopback, benign traffic and attackers against its gateway."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from console.cli import lab_attacks
from console.cli.common import OutputFormat, OutputOption, context, emit, errors_as_exit, safe
from console.cli.common import stderr as err
from console.cli.common import stdout as out

if TYPE_CHECKING:  # the launcher imports httpx; keep `--help` light
    from console.lab.attacks.state import AttackRecord
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
    help="Comma-separated subset of redis,mlflow,alertmanager,prometheus,victoria-metrics,"
    "vmalert,gateway,traffic (up: default lab.services; down/status: default all).",
)


class MetricsEngine(StrEnum):
    prometheus = "prometheus"
    victoria_metrics = "victoria-metrics"


MetricsOption = typer.Option(
    None,
    "--metrics",
    help="Query engine to start: prometheus, or victoria-metrics (with vmalert evaluating the "
    "same rules) instead of Prometheus. Default: the services as listed.",
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
    metrics: MetricsEngine | None = MetricsOption,
    replicas: int | None = typer.Option(
        None,
        "--replicas",
        min=1,
        help="Run the gateway as N processes behind NGINX on the gateway's URL, which asks the "
        "policy endpoint before each request. 1: the single gateway. Default: what the lab runs "
        "(replicas stay until `lab down`).",
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Start services (reusing those already running), wait until they answer, seed MLflow."""
    with errors_as_exit():
        from console.lab import services as launcher

        settings = context(ctx).settings
        names = _names(services)
        if metrics is not None:
            names = launcher.with_metrics_engine(names or settings.lab.services, metrics.value)
        kept = launcher.recorded_replicas(settings) if replicas is None else 1
        if kept > 1:
            err.print(
                f"keeping the lab's {kept} gateway replicas behind nginx (`aml-console lab down"
                " -s gateway` first for a single gateway)"
            )
        result = launcher.up(settings, names, seed=seed, replicas=replicas)

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
    """Stop services (their whole process groups) and remove their pid files; without
    --services, also the attacks still running against the lab."""
    with errors_as_exit():
        from console.lab import guard
        from console.lab import services as launcher

        settings = context(ctx).settings
        guard.refuse_read_only(settings, "lab down")  # before its attackers are stopped
        if services is None:  # the whole lab: its attackers too
            from console.lab.attacks.state import stop_running

            for attack in stop_running(settings):
                err.print(f"stopped attack {safe(attack.id)} (pid {attack.pid})")
        result = launcher.down(settings, _names(services))
    emit([s.as_dict() for s in result], output, lambda: _render_services(result))


@app.command()
def status(
    ctx: typer.Context,
    services: str | None = ServicesOption,
    attacks: bool = typer.Option(
        False,
        "--attacks",
        help="JSON: an object {services, attacks} instead of the list of services. The table "
        "always lists recent attacks.",
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Show each service: url, port, pid and state (running, stopped, dead); recent attacks."""
    with errors_as_exit():
        from console.lab import services as launcher
        from console.lab.attacks.state import list_attacks

        settings = context(ctx).settings
        result = launcher.status(settings, _names(services))
        recent = list_attacks(settings)

    def render() -> None:
        _render_services(result)
        if recent:
            _render_attacks(recent)

    rows = [s.as_dict() for s in result]
    data: Any = {"services": rows, "attacks": [a.summary() for a in recent]} if attacks else rows
    emit(data, output, render)


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


def _render_attacks(records: list[AttackRecord]) -> None:
    table = Table("id", "kind", "client", "model", "pid", "started", "state", title="lab attacks")
    for a in records:
        style = {"running": "yellow", "finished": "green", "failed": "red", "dead": "bold red"}
        table.add_row(
            safe(a.id),
            safe(a.kind),
            safe(a.client),
            safe(a.model),
            str(a.pid),
            safe(f"{a.started:%Y-%m-%d %H:%M:%S}"),
            f"[{style.get(a.state, '')}]{safe(a.state)}[/]",
        )
    out.print(table)


# `lab attack ...` and `lab traffic` live in their own module (console/cli/lab_attacks.py).
app.add_typer(lab_attacks.attack_app, name="attack")
app.command()(lab_attacks.traffic)
