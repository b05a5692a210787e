"""``aml-console get alerts|clients|models|mitigations|samples|runs|fleet``: what a TUI view shows,
read once from the same views (console/views), printed as a table, JSON or CSV.

Like ``kubectl get``: the rows on stdout, nothing else there; a source that failed beside the
data is one ``warning:`` line on stderr each (exit 0, the rows that could be read); a view that
could not be read at all is one ``error:`` line and exit 1. A filter a view has no field for is
not an option of its command (``get clients --since`` is a usage error).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

from console.cli.common import OutputFormat, context, errors_as_exit, one_line, safe, stderr
from console.urls import redact_urls_in

if TYPE_CHECKING:
    from console.cli.get_rows import Filters, Listing
    from console.config import Settings

# The views, their adapters and clients load inside the commands (`--help` stays fast).

app = typer.Typer(
    help="Print what a view of the TUI shows (table, JSON or CSV), for scripts and chat-ops.",
    no_args_is_help=True,
)


def _duration(value: str | None) -> str | None:
    from console.durations import parse_duration

    if value is not None:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


def _client_id(value: str | None) -> str | None:
    from console.adapters.policy_records import check_client_id
    from console.errors import ParameterError

    if value is not None:
        try:
            check_client_id(value)
        except ParameterError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


OutputOption = typer.Option(
    OutputFormat.table,
    "--output",
    "-o",
    help="table for people; json (a list of row objects) or csv (a header row) for scripts.",
)
ModelOption = typer.Option(None, "--model", help="Only the rows of this model.")
ClientOption = typer.Option(None, "--client", help="Only the rows of this client.")
SinceOption = typer.Option(
    None,
    "--since",
    callback=_duration,
    metavar="DURATION",
    help="Only what started in the last DURATION (15m, 2h, 7d).",
)
TopOption = typer.Option(None, "--top", min=1, metavar="N", help="At most N rows, in view order.")


def _get(
    ctx: typer.Context,
    view: str,
    output: OutputFormat,
    model: str | None = None,
    client: str | None = None,
    since: str | None = None,
    top: int | None = None,
    search: str | None = None,
    more: int = 0,
) -> None:
    from console.cli.get_render import show
    from console.cli.get_rows import Filters
    from console.durations import parse_duration

    filters = Filters(model, client, parse_duration(since) if since else None, top, search, more)
    with errors_as_exit():
        listing = asyncio.run(_read(context(ctx).settings, view, filters))
    for warning in listing.warnings:
        stderr.print(f"[yellow]warning:[/] {safe(one_line(redact_urls_in(warning)))}")
    filtered = any(v is not None for v in (model, client, since, search))
    show(view, listing, output, filtered)


async def _read(settings: Settings, view: str, filters: Filters) -> Listing:
    from console.adapters.backends import Backends
    from console.cli.get_fleet import fleet
    from console.cli.get_rows import READERS, narrowed

    readers = {**READERS, "fleet": fleet}
    backends = Backends(settings)
    try:
        return narrowed(await readers[view](backends, filters), filters)
    finally:
        await backends.aclose()


@app.command("alerts")
def alerts(
    ctx: typer.Context,
    model: str | None = ModelOption,
    client: str | None = ClientOption,
    since: str | None = SinceOption,
    top: int | None = TopOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Alertmanager's alerts, most severe first, with their state and silences."""
    _get(ctx, "alerts", output, model, client, since, top)


@app.command("clients")
def clients(
    ctx: typer.Context,
    model: str | None = ModelOption,
    client: str | None = typer.Option(
        None,
        "--client",
        callback=_client_id,
        help="Only the rows of this client, read by its exact id wherever it ranks.",
    ),
    search: str | None = typer.Option(
        None,
        "--search",
        metavar="TEXT",
        help="Clients whose id contains TEXT (any case), searched across the fleet, as / does.",
    ),
    more: int = typer.Option(
        0, "--more", min=0, metavar="N", help="N more pages of 20 clients by each column."
    ),
    top: int | None = TopOption,
    output: OutputFormat = OutputOption,
) -> None:
    """The clients that matter first: alerts, blocks, budgets and hardening, then the top 20
    per model by extraction score, flag rate, refused share and request rate, each with why
    it is listed; then those the gateway counts as `other`. `--client` reads one client by its
    exact id, wherever it ranks."""
    _get(ctx, "clients", output, model, client, None, top, search, more)


@app.command("models")
def models(
    ctx: typer.Context,
    model: str | None = ModelOption,
    top: int | None = TopOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Each model's rate, latency, errors and confidence shift, and its registry aliases."""
    _get(ctx, "models", output, model, None, None, top)


@app.command("mitigations")
def mitigations(
    ctx: typer.Context,
    model: str | None = ModelOption,
    client: str | None = ClientOption,
    since: str | None = SinceOption,
    top: int | None = TopOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Blocks and budgets in force, and the registry changes the console made (audit log)."""
    _get(ctx, "mitigations", output, model, client, since, top)


@app.command("samples")
def samples(
    ctx: typer.Context,
    model: str | None = ModelOption,
    client: str | None = ClientOption,
    since: str | None = SinceOption,
    top: int | None = TopOption,
    output: OutputFormat = OutputOption,
) -> None:
    """The gateway's sampled inputs, newest first, with their provenance."""
    _get(ctx, "samples", output, model, client, since, top)


@app.command("runs")
def runs(
    ctx: typer.Context,
    model: str | None = ModelOption,
    client: str | None = ClientOption,
    since: str | None = SinceOption,
    top: int | None = TopOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Runbook runs in the run dir, newest first, with what each applied."""
    _get(ctx, "runs", output, model, client, since, top)


@app.command("fleet")
def fleet(
    ctx: typer.Context,
    model: str | None = ModelOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Every served model: its champion and recorded robustness against the gate, the
    adversarial success across its evaluations, incidents and drills of the last 30 days,
    mitigations in force, and the serving cost of refused and flagged traffic (M8)."""
    _get(ctx, "fleet", output, model)
