"""``aml-console incident open|note|close|list|show|export``: an incident groups the alerts,
runbook runs and notes of one attack, and drafts its postmortem (markdown, HTML, JSON).

Open, note and close write audit records and are refused in read-only mode; list, show and
export only read."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from console.cli.common import (
    OutputFormat,
    OutputOption,
    context,
    emit,
    errors_as_exit,
    new_table,
    safe,
)
from console.cli.common import stderr as err
from console.cli.common import stdout as out

if TYPE_CHECKING:
    from console.config import Settings
    from console.incidents.model import Incident

app = typer.Typer(
    help="Incidents: open one on an attack, add notes, close it, and export its postmortem "
    "(timeline, time to detect/mitigate/contain, who did what).",
    no_args_is_help=True,
)


class Kind(StrEnum):
    extraction = "extraction"
    evasion = "evasion"
    flood = "flood"
    poisoning = "poisoning"
    probing = "probing"
    unknown = "unknown"


class Severity(StrEnum):
    critical = "critical"
    warning = "warning"
    info = "info"


class ExportChoice(StrEnum):
    md = "md"
    html = "html"
    json = "json"


def _backends(settings: Settings) -> Any:
    from console.adapters.backends import Backends

    return Backends(settings)


def _row(incident: Incident, recurrence: str) -> dict[str, Any]:
    return {
        **incident.model_dump(mode="json"),
        "recurrence": recurrence,
    }


@app.command("open")
def open_incident(
    ctx: typer.Context,
    title: str = typer.Option("", "--title", help="One line (default: kind, model, client)."),
    model: str | None = typer.Option(None, "--model", help="The model under attack."),
    client: str | None = typer.Option(None, "--client", help="The attacking client's id."),
    kind: Kind | None = typer.Option(None, "--kind", help="Attack kind (default: the alert's)."),
    severity: Severity | None = typer.Option(
        None, "--severity", help="critical, warning or info (default: the alert's, else warning)."
    ),
    from_alert: str | None = typer.Option(
        None,
        "--from-alert",
        metavar="ALERTNAME",
        help="Take client, model, severity and kind from this firing alert (Alertmanager).",
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Open an incident (an incident-open audit record); prints its id."""
    from console.errors import IncidentError
    from console.incidents.store import IncidentStore

    with errors_as_exit():
        settings = context(ctx).settings
        store = IncidentStore(settings)
        store.refuse_read_only("incident open")
        attack = kind.value if kind else None
        level = severity.value if severity else None
        source = "manual"
        if from_alert is not None:
            facts = asyncio.run(_alert_facts(settings, from_alert, model, client))
            model, client = model or facts.model, client or facts.client
            attack = attack or facts.attack_kind
            level = level or facts.severity
            title = title or facts.summary
            source = "alert"
        if model is None and client is None:
            raise IncidentError("an incident needs --model or --client (or --from-alert)")
        already = store.open_for(model, client)
        if already is not None:
            raise IncidentError(
                f"incident {already.id} is already open on {already.client or already.model}: "
                f"add to it with `incident note {already.id} TEXT`"
            )
        incident = store.open(
            title=title,
            severity=level or "warning",
            attack_kind=attack or "unknown",  # type: ignore[arg-type]
            model=model,
            client=client,
            operator=settings.operator,
            source=source,  # type: ignore[arg-type]
            alert=from_alert,
        )
    emit(
        incident.model_dump(mode="json"),
        output,
        lambda: out.print(f"opened {safe(incident.id)}: {safe(incident.title)}"),
    )


async def _alert_facts(
    settings: Settings, alertname: str, model: str | None, client: str | None
) -> Any:
    from console.incidents.from_alert import firing_alert

    backends = _backends(settings)
    try:
        return await firing_alert(backends, alertname, model, client)
    finally:
        await backends.aclose()


@app.command()
def note(
    ctx: typer.Context,
    words: list[str] = typer.Argument(
        ...,
        metavar="[ID] TEXT",
        help="The incident's id (default: the current open one), then the note.",
    ),
) -> None:
    """Add a note to an incident (an incident-note audit record)."""
    from console.errors import IncidentError
    from console.incidents.store import IncidentStore

    with errors_as_exit():
        settings = context(ctx).settings
        store = IncidentStore(settings)
        store.refuse_read_only("incident note")
        if len(words) > 1 and words[0].startswith("inc-"):
            incident_id, text = words[0], " ".join(words[1:])
        else:
            current = store.current()
            if current is None:
                raise IncidentError("no incident is open: name one (`incident note ID TEXT`)")
            incident_id, text = current.id, " ".join(words)
        incident = store.get(incident_id)
        store.note(incident.id, text, settings.operator)
    out.print(f"noted on {safe(incident.id)}")


@app.command()
def close(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID"),
    reason: str = typer.Option("", "--reason", help="Why it is closed (resolved, false alarm)."),
) -> None:
    """Close an incident (an incident-close audit record)."""
    from console.incidents.store import IncidentStore

    with errors_as_exit():
        settings = context(ctx).settings
        incident = IncidentStore(settings).close(incident_id, settings.operator, reason)
    out.print(f"closed {safe(incident.id)}")


@app.command("list")
def list_incidents(ctx: typer.Context, output: OutputFormat = OutputOption) -> None:
    """Incidents, newest first, each with how often its kind came back (recurrence)."""
    from console.incidents.recurrence import recurrence_of
    from console.incidents.store import IncidentStore

    with errors_as_exit():
        store = IncidentStore(context(ctx).settings)
        incidents = store.all()
    now = datetime.now(UTC)
    rows = [_row(i, recurrence_of(i, incidents, now).text) for i in incidents]

    def render() -> None:
        table = new_table(
            "id", "status", "severity", "kind", "model", "client", "opened", "recurrence"
        )
        for r in rows:
            table.add_row(
                safe(r["id"]),
                safe(r["status"]),
                safe(r["severity"]),
                safe(r["attack_kind"]),
                safe(r["model"] or ""),
                safe(r["client"] or ""),
                safe(str(r["opened_at"])[:19]),
                safe(r["recurrence"]),
            )
        out.print(table)

    emit(rows, output, render)
    for problem in store.problems[:5]:
        err.print(f"[yellow]note:[/] {safe(problem)}")


@app.command()
def show(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID"),
    output: OutputFormat = OutputOption,
) -> None:
    """An incident's timeline: alerts, runs, mitigations, notes (and what could not be read)."""
    from console.incidents.store import IncidentStore
    from console.incidents.timeline import collect

    with errors_as_exit():
        settings = context(ctx).settings
        incident = IncidentStore(settings).get(incident_id)
        collected = asyncio.run(_collect(settings, incident, collect))
    data = {
        "incident": incident.model_dump(mode="json"),
        **collected.times.as_dict(),
        "timeline": [e.as_dict() for e in collected.events],
        "missing": collected.missing,
    }

    def render() -> None:
        out.print(f"[bold]{safe(incident.id)}[/] {safe(incident.title)} ({safe(incident.status)})")
        table = new_table("at (UTC)", "since opened", "event", "detail", "by")
        for e in collected.events:
            since = (e.at - incident.opened_at).total_seconds()
            table.add_row(
                safe(e.at.strftime("%Y-%m-%d %H:%M:%S")),
                f"{since:+.1f}s",
                safe(e.kind),
                safe(e.detail),
                safe(e.operator or ""),
            )
        out.print(table)
        times = collected.times.as_dict()
        out.print(" ".join(f"{k}={'–' if v is None else f'{v:.3f}'}" for k, v in times.items()))
        for line in collected.missing:
            err.print(f"[yellow]missing:[/] {safe(line)}")

    emit(data, output, render)


async def _collect(settings: Settings, incident: Incident, collect: Any) -> Any:
    backends = _backends(settings)
    try:
        return await collect(incident, settings, backends)
    finally:
        await backends.aclose()


@app.command()
def export(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID"),
    fmt: ExportChoice = typer.Option(ExportChoice.md, "--format", help="md, html or json."),
    path: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="File to write (default <run_dir>/incidents/<id>/postmortem.<ext>); - for stdout.",
    ),
) -> None:
    """Draft the postmortem: summary, timeline, times, who did what, evidence, chart."""
    from console.incidents.export import export_incident

    with errors_as_exit():
        settings = context(ctx).settings

        async def run() -> Any:
            backends = _backends(settings)
            try:
                return await export_incident(settings, backends, incident_id, fmt.value, path)
            finally:
                await backends.aclose()

        done = asyncio.run(run())
    for line in done.missing:
        err.print(f"[yellow]missing:[/] {safe(line)}")
    if done.path is None:
        sys.stdout.write(done.text)
        return
    out.print(str(done.path), markup=False)
    if done.chart is not None:
        err.print(f"chart: {safe(done.chart)}")
