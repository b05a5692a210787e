"""``aml-console drill list|validate|run|history|show``: game-day drills against the lab, scored
on the real systems' timeline (time to detect, time to mitigate, what the attacker got)."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from console.cli.common import (
    OutputFormat,
    OutputOption,
    context,
    emit,
    errors_as_exit,
    fail,
    new_table,
    safe,
)
from console.cli.common import stderr as err
from console.cli.common import stdout as out
from console.errors import read_only_refusal

app = typer.Typer(
    help="Game-day drills: run a scripted attack on the lab, respond (scripted or from the "
    "TUI), and score time to detect and to mitigate.",
    no_args_is_help=True,
)


class ResponderChoice(StrEnum):
    auto = "auto"
    human = "human"


@app.command("list")
def list_drills(ctx: typer.Context, output: OutputFormat = OutputOption) -> None:
    """Drill scenarios in the drill folders (configs/drills), with any that do not validate."""
    from console.drills.scenario import load_scenario, scenario_files
    from console.errors import DrillScenarioError

    with errors_as_exit():
        settings = context(ctx).settings
        rows: list[dict[str, Any]] = []
        for path in scenario_files(settings.drill_search_path):
            try:
                sc = load_scenario(path).scenario
                rows.append(
                    {
                        "name": sc.name,
                        "title": sc.title,
                        "attack": sc.attack.kind,
                        "alert": sc.detect.alertname,
                        "responses": [r.runbook for r in sc.respond],
                        "path": str(path),
                        "valid": True,
                        "error": None,
                    }
                )
            except DrillScenarioError as exc:
                rows.append(
                    {
                        "name": path.stem,
                        "title": "",
                        "attack": "",
                        "alert": "",
                        "responses": [],
                        "path": str(path),
                        "valid": False,
                        "error": str(exc),
                    }
                )

    def render() -> None:
        table = new_table("scenario", "attack", "expected alert", "scripted response", "title")
        for r in rows:
            if r["valid"]:
                table.add_row(
                    safe(r["name"]),
                    safe(r["attack"]),
                    safe(r["alert"]),
                    safe(", ".join(r["responses"])),
                    safe(r["title"]),
                )
            else:
                table.add_row(
                    f"[red]{safe(r['name'])}[/]", "[red]INVALID[/]", "", "", safe(r["error"])
                )
        out.print(table)

    emit(rows, output, render)


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="Scenario files.")) -> None:
    """Check scenario files; every problem as file:line: field: reason."""
    from console.drills.scenario import load_scenario
    from console.errors import DrillScenarioError

    bad = False
    for path in files:
        try:
            load_scenario(path)
            out.print(f"ok {safe(path)}")
        except DrillScenarioError as exc:
            bad = True
            for problem in exc.problems:
                err.print(safe(problem))
    if bad:
        raise typer.Exit(1)


@app.command()
def run(
    ctx: typer.Context,
    scenario: str = typer.Argument(..., help="Scenario name (drill list) or file."),
    responder: ResponderChoice = typer.Option(
        ResponderChoice.human,
        "--responder",
        help="auto: the scenario's runbooks run when their alerts fire (CI, automation); "
        "human: respond from `aml-console tui` in another terminal, the drill keeps the clock.",
    ),
    wait_quiet: float = typer.Option(
        0.0,
        "--wait-quiet",
        min=0,
        max=3600,
        help="Seconds to wait for the scenario's alert to resolve if it is already firing "
        "(default: refuse at once).",
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Run a drill on the lab and score it; the report goes to <run_dir>/drills/<id>/."""
    from console.drills.report import write_report
    from console.drills.runner import DrillRunner
    from console.drills.scenario import find_scenario

    with errors_as_exit():
        settings = context(ctx).settings
        if settings.read_only:  # whoever responds, the drill attacks the lab
            raise read_only_refusal("drill run")
        loaded = find_scenario(scenario, settings.drill_search_path)
        runner = DrillRunner(
            settings, loaded, responder.value, on_event=_print_event, wait_quiet_s=wait_quiet
        )
        title = loaded.scenario.title or loaded.scenario.name
        err.print(f"drill {safe(runner.drill_id)}: {safe(title)}")
        if responder is ResponderChoice.human:
            alert = loaded.scenario.detect.alertname
            err.print(
                f"respond from the console: `aml-console tui` (attacker "
                f"[bold]{safe(runner.attacker)}[/], alert {safe(alert)}); "
                "the clock is running"
            )
        try:
            report = asyncio.run(runner.run())
        except KeyboardInterrupt:
            fail("drill interrupted: no report written", 130)
        folder = write_report(settings, report)
    summary = {**report.summary(), "report_dir": str(folder)}

    def render() -> None:
        table = new_table("score", "value")
        for key, value in summary.items():
            table.add_row(safe(key), safe(_fmt(value)))
        out.print(table)
        for problem in report.errors[:5]:
            err.print(f"[yellow]note:[/] {safe(problem)}")

    emit(summary, output, render)
    if not report.scores.contained:
        raise typer.Exit(3)


def _print_event(event: Any) -> None:
    err.print(f"[dim]{event.at_s:7.1f}s[/] [bold]{safe(event.kind)}[/] {safe(event.detail)}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "–" if value is None else str(value)


@app.command()
def history(ctx: typer.Context, output: OutputFormat = OutputOption) -> None:
    """Past drills, newest first, with their scores (runs are comparable over time)."""
    from console.drills.report import history as past_drills

    with errors_as_exit():
        past = past_drills(context(ctx).settings)
    rows = []
    for p in past:
        scores = (p.data or {}).get("scores", {})
        rows.append(
            {
                "id": p.id,
                "scenario": (p.data or {}).get("scenario"),
                "responder": (p.data or {}).get("responder"),
                **scores,
                "problem": p.problem,
            }
        )

    def render() -> None:
        table = new_table(
            "drill",
            "scenario",
            "responder",
            "contained",
            "detect s",
            "mitigate s",
            "answered",
            "attacker success",
            "benign blocked",
            "false alerts",
        )
        for r in rows:
            if r["problem"]:
                table.add_row(safe(r["id"]), f"[red]unreadable: {safe(r['problem'])}[/]")
                continue
            table.add_row(
                *(
                    safe(_fmt(r.get(k)))
                    for k in (
                        "id",
                        "scenario",
                        "responder",
                        "contained",
                        "time_to_detect_s",
                        "time_to_mitigate_s",
                        "attacker_queries_answered",
                        "attacker_success",
                        "benign_blocked",
                        "false_alerts",
                    )
                )
            )
        out.print(table)

    emit(rows, output, render)


@app.command()
def show(
    ctx: typer.Context,
    drill_id: str = typer.Argument(..., help="Drill id (or its first characters)."),
    output: OutputFormat = OutputOption,
) -> None:
    """One drill's timeline and scores."""
    from console.drills.report import load_report

    with errors_as_exit():
        past = load_report(context(ctx).settings, drill_id)
        if past.data is None:
            fail(f"drill report {past.path} is unreadable: {past.problem}")
    data = past.data

    def render() -> None:
        out.print(f"[bold]drill {safe(past.id)}[/] ({safe(past.path)})")
        timeline = new_table("t", "event", "detail")
        for event in data.get("timeline", []):
            timeline.add_row(
                f"{event.get('at_s', 0):.1f}s", safe(event.get("kind")), safe(event.get("detail"))
            )
        out.print(timeline)
        scores = new_table("score", "value")
        for key, value in data.get("scores", {}).items():
            scores.add_row(safe(key), safe(_fmt(value)))
        out.print(scores)

    emit(data, output, render)
