"""``aml-console runbook ...``: list, show, validate, run, status, resume, abort."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from console.cli.common import (
    OutputFormat,
    OutputOption,
    context,
    emit,
    errors_as_exit,
    fail,
    new_table,
    one_line,
    print_json,
    safe,
    stdout,
)
from console.errors import ConfirmationRequired, RunbookValidationError

if TYPE_CHECKING:
    from console.runbooks.engine import RunEvent, RunPlan
    from console.runbooks.state import RunState

# The engine, its adapters and their clients (redis, httpx) load inside the commands that
# use them, so `--help` and shell completion stay fast.

app = typer.Typer(
    help="List, check and run runbooks; see and finish interrupted runs.", no_args_is_help=True
)

ParamOption = typer.Option(
    [], "--param", "-p", help="NAME=VALUE, repeat for each parameter.", metavar="NAME=VALUE"
)
YesOption = typer.Option(False, "--yes", "-y", help="Apply without asking (scripts, drills).")


@app.command("list")
def list_runbooks(ctx: typer.Context, output: OutputFormat = OutputOption) -> None:
    """Runbooks in the runbook folders, with any that do not validate."""
    from console.runbooks.loader import load_runbook, runbook_files

    with errors_as_exit():
        settings = context(ctx).settings
        rows: list[dict[str, Any]] = []
        for path in runbook_files(settings.runbook_dirs):
            try:
                rb = load_runbook(path).runbook
                rows.append(
                    {
                        "name": rb.name,
                        "title": rb.title,
                        "path": str(path),
                        "steps": [s.action for s in rb.steps],
                        "valid": True,
                        "error": None,
                    }
                )
            except RunbookValidationError as exc:
                rows.append(
                    {
                        "name": path.stem,
                        "title": "",
                        "path": str(path),
                        "steps": [],
                        "valid": False,
                        "error": exc.problems[0],
                    }
                )

        def render() -> None:
            if not rows:
                dirs = ", ".join(str(d) for d in settings.runbook_dirs)
                stdout.print(f"no runbooks in {safe(dirs)}")
                return
            grid = new_table("name", "title", "steps")
            for row in rows:
                title = (
                    safe(row["title"]) if row["valid"] else f"[red]invalid: {safe(row['error'])}[/]"
                )
                grid.add_row(safe(row["name"]), title, safe(" -> ".join(row["steps"])))
            stdout.print(grid)

        emit(rows, output, render)


@app.command("show")
def show(ctx: typer.Context, name: str, output: OutputFormat = OutputOption) -> None:
    """A runbook's parameters, preconditions and steps."""
    from console.runbooks.loader import find_runbook

    with errors_as_exit():
        loaded = find_runbook(name, context(ctx).settings.runbook_dirs)
        rb = loaded.runbook
        data = rb.model_dump(mode="json", by_alias=True) | {"path": str(loaded.path)}

        def render() -> None:
            stdout.print(f"[bold]{safe(rb.name)}[/]  {safe(rb.title)}  ({safe(loaded.path)})")
            if rb.description:
                stdout.print(safe(rb.description.strip()))
            stdout.print(f"target: {safe(rb.target)}")
            params = new_table(
                "parameter", "type", "required", "default", "constraint", "description"
            )
            for pname, spec in rb.parameters.items():
                constraint = spec.pattern or (", ".join(spec.values) if spec.values else "")
                if spec.min is not None or spec.max is not None:
                    low = "" if spec.min is None else spec.min
                    high = "" if spec.max is None else spec.max
                    constraint = f"{low}..{high}"
                params.add_row(
                    safe(pname),
                    spec.type,
                    "yes" if spec.required else "",
                    safe(spec.default if spec.default is not None else ""),
                    safe(constraint),
                    safe(spec.description),
                )
            stdout.print(params)
            for pre in rb.preconditions:
                stdout.print(f"precondition: {safe(pre.check)} {safe(pre.with_)}")
            steps = new_table("step", "action", "timeout", "retries", "compensate")
            for step in rb.steps:
                comp = (
                    step.compensate if isinstance(step.compensate, str) else step.compensate.action
                )
                steps.add_row(
                    safe(step.id), safe(step.action), step.timeout, str(step.retries), safe(comp)
                )
            stdout.print(steps)

        emit(data, output, render)


@app.command("validate")
def validate(
    files: list[Path] = typer.Argument(..., help="Runbook files to check."),
    output: OutputFormat = OutputOption,
) -> None:
    """Check runbook files; report every problem as file:line: field: reason."""
    from console.runbooks.loader import load_runbook

    results: list[dict[str, Any]] = []
    for path in files:
        try:
            load_runbook(path)
            results.append({"path": str(path), "valid": True, "problems": []})
        except RunbookValidationError as exc:
            results.append({"path": str(path), "valid": False, "problems": exc.problems})

    def render() -> None:
        for result in results:
            if result["valid"]:
                stdout.print(f"[green]ok[/] {safe(result['path'])}")
            for problem in result["problems"]:
                stdout.print(f"[red]error[/] {safe(problem)}")

    emit(results, output, render)
    if not all(r["valid"] for r in results):
        raise typer.Exit(1)


@app.command("run")
def run(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Runbook name (see `runbook list`) or a YAML file."),
    param: list[str] = ParamOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and stop."),
    yes: bool = YesOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Plan a runbook from the real state, confirm, then apply it step by step."""
    from console.runbooks.engine import RunbookEngine
    from console.runbooks.loader import find_runbook
    from console.runbooks.params import parse_assignments

    with errors_as_exit():
        settings = context(ctx).settings
        loaded = find_runbook(name, settings.runbook_dirs)
        engine = RunbookEngine(settings)
        plan = asyncio.run(engine.plan(loaded, parse_assignments(param)))
        if output is OutputFormat.table:
            _print_plan(plan, settings.read_only)
        if dry_run:
            if output is OutputFormat.json:
                print_json({"dry_run": True, "plan": plan.to_dict()})
            return
        confirmed = yes or _ask(f"Apply {plan.loaded.runbook.name} to {plan.target}?", output)
        state = asyncio.run(engine.run(plan, confirmed=confirmed, on_event=_progress(output)))
        _report(state, output, plan)


@app.command("status")
def status(
    ctx: typer.Context,
    all_runs: bool = typer.Option(False, "--all", help="Every run, finished ones too."),
    output: OutputFormat = OutputOption,
) -> None:
    """Runs that did not finish (crash, kill -9, lost lock) and what they applied."""
    from console.runbooks.engine import RunbookEngine

    with errors_as_exit():
        engine = RunbookEngine(context(ctx).settings)
        runs = engine.store.all() if all_runs else engine.unfinished()
        data = [_run_dict(r) for r in runs]

        def render() -> None:
            if not runs:
                stdout.print("no unfinished runs" if not all_runs else "no runs")
                return
            grid = new_table(
                "run", "runbook", "target", "status", "operator", "started", "applied steps"
            )
            for r, d in zip(runs, data, strict=True):
                grid.add_row(
                    safe(r.run_id),
                    safe(r.runbook),
                    safe(r.target),
                    _status_style(d["status"]),
                    safe(r.operator),
                    f"{r.created_at:%Y-%m-%d %H:%M:%S}Z",
                    safe(", ".join(f"{s['id']}({s['status']})" for s in d["applied"]) or "-"),
                )
            stdout.print(grid)
            if any(d["status"] in ("interrupted", "failed") for d in data):
                stdout.print(
                    "finish one with `aml-console runbook resume RUN_ID` or undo it "
                    "with `aml-console runbook abort RUN_ID`"
                )

        emit(data, output, render)


SecretParamOption = typer.Option(
    [], "--param", "-p", help="Secret parameters again (they are never stored)."
)


@app.command("resume")
def resume(
    ctx: typer.Context,
    run_id: str,
    param: list[str] = SecretParamOption,
    yes: bool = YesOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Finish an interrupted run from where it stopped."""
    _finish(ctx, run_id, param, yes, output, "resume")


@app.command("abort")
def abort(
    ctx: typer.Context,
    run_id: str,
    param: list[str] = SecretParamOption,
    yes: bool = YesOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Undo what an interrupted run applied (its compensations, in reverse)."""
    _finish(ctx, run_id, param, yes, output, "abort")


def _finish(
    ctx: typer.Context,
    run_id: str,
    param: list[str],
    yes: bool,
    output: OutputFormat,
    verb: Literal["resume", "abort"],
) -> None:
    from console.runbooks.engine import RunbookEngine
    from console.runbooks.params import parse_assignments

    with errors_as_exit():
        engine = RunbookEngine(context(ctx).settings)
        given = parse_assignments(param)
        state = engine.store.load(run_id)
        if output is OutputFormat.table:
            _print_run(state)
        question = "Resume" if verb == "resume" else "Undo"
        if not (
            yes or _ask(f"{question} run {run_id} ({state.runbook} on {state.target})?", output)
        ):
            raise ConfirmationRequired(f"not confirmed: pass --yes to {verb}")
        call = engine.resume if verb == "resume" else engine.abort
        result = asyncio.run(call(run_id, given, on_event=_progress(output)))
        _report(result, output, expected="succeeded" if verb == "resume" else "aborted")


# Rendering ----------------------------------------------------------------------------------
def _ask(question: str, output: OutputFormat) -> bool:
    if not sys.stdin.isatty() or output is OutputFormat.json:
        raise ConfirmationRequired(
            "refusing to apply without confirmation: stdin is not a terminal, pass --yes"
        )
    return typer.confirm(question, default=False)


def _print_plan(plan: RunPlan, read_only: bool) -> None:
    # Lines, not a table: the exact requests must never be cut to fit a terminal.
    rb = plan.loaded.runbook
    params = " ".join(f"{k}={v}" for k, v in plan.public_params.items() if v is not None)
    stdout.print(
        f"[bold]plan[/] {safe(rb.name)} on {safe(plan.target)}  run {plan.run_id}  "
        f"operator {safe(plan.operator)}  env {safe(plan.environment)}"
    )
    stdout.print(f"params: {safe(params)}")
    for i, step in enumerate(plan.steps, 1):
        d = step.to_dict()
        noop = " [dim](no-op: already in place)[/]" if d["noop"] else ""
        stdout.print(f"  {i}. [bold]{safe(d['id'])}[/] {safe(d['action'])}")
        stdout.print(f"     change:  {safe(d['summary'])}{noop}")
        for request in d["requests"]:
            stdout.print(f"     request: {safe(request)}")
    if read_only:
        stdout.print("[yellow]read-only mode: this plan cannot be applied[/]")


def _progress(output: OutputFormat) -> Any:
    def show(event: RunEvent) -> None:
        if output is OutputFormat.json:
            return
        if event.kind == "step-started":
            stdout.print(f"  -> {safe(event.step)}: {safe(event.summary)}")
        elif event.kind == "step-finished":
            mark = "[green]ok[/]" if event.status in ("applied", "noop") else "[red]failed[/]"
            extra = " (no-op: already in place)" if event.status == "noop" else ""
            err = f": {safe(one_line(event.error))}" if event.error else ""
            stdout.print(f"     {mark} {safe(event.step)}{extra}{err}")
        elif event.kind == "compensation-started":
            stdout.print(f"  <- undo {safe(event.step)}")
        elif event.kind == "compensation-finished":
            ok = event.status == "compensated"
            mark = "[green]undone[/]" if ok else f"[red]undo failed[/]: {safe(event.error or '')}"
            stdout.print(f"     {mark} {safe(event.step)}")

    return show


def _report(
    state: RunState,
    output: OutputFormat,
    plan: RunPlan | None = None,
    expected: str = "succeeded",
) -> None:
    data = {"run": _run_dict(state)}
    if plan is not None:
        data["plan"] = plan.to_dict()
    if output is OutputFormat.json:
        print_json(data)
    else:
        stdout.print(f"run {state.run_id}: {_status_style(state.status)}")
        for key, value in state.outputs.items():
            stdout.print(f"  {safe(key)} = {safe(value)}")
    if state.status != expected:
        fail(f"run {state.run_id} {state.status}: {state.error or 'see audit show'}")


def _print_run(state: RunState) -> None:
    stdout.print(
        f"run {state.run_id}: {safe(state.runbook)} on {safe(state.target)}, "
        f"{_status_style(state.effective_status)}"
    )
    for step in state.steps:
        stdout.print(f"  {safe(step.id)}: {safe(step.status)} {safe(step.summary)}")


def _run_dict(state: RunState) -> dict[str, Any]:
    data = state.model_dump(mode="json")
    data["status"] = state.effective_status
    data["applied"] = [
        {"id": s.id, "action": s.action, "status": s.status, "summary": s.summary}
        for s in state.steps
        if s.status in ("applied", "applying", "compensation-failed", "noop")
    ]
    return data


def _status_style(status: str) -> str:
    colour = {"succeeded": "green", "aborted": "yellow", "compensated": "yellow"}.get(status, "red")
    return f"[{colour}]{status}[/]"
