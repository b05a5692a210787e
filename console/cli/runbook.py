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
    errors_as_exit,
    new_table,
    safe,
)
from console.cli.runbook_render import (
    emit,
    out,
    print_plan,
    print_run,
    progress,
    report,
    run_dict,
    status_style,
    write_json,
)
from console.errors import ConfirmationRequired, RunbookValidationError, RunNotFound

if TYPE_CHECKING:
    from console.adapters.approval_store import ApprovalRecord
    from console.runbooks.engine import RunbookEngine

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
    """Runbooks by name: the shipped ones, the user's ($XDG_CONFIG_HOME/aml-console/runbooks)
    and the context's runbook_dirs, a later one overriding an earlier one of the same name;
    with where each comes from, and any that do not validate."""
    from console.runbooks.loader import load_runbook, runbook_files, runbook_source

    with errors_as_exit():
        settings = context(ctx).settings
        rows: list[dict[str, Any]] = []
        for path in runbook_files(settings.runbook_search_path):
            try:
                rb = load_runbook(path, settings).runbook
                rows.append(
                    {
                        "name": rb.name,
                        "title": rb.title,
                        "path": str(path),
                        "source": runbook_source(path),
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
                        "source": runbook_source(path),
                        "steps": [],
                        "valid": False,
                        "error": exc.problems[0],
                    }
                )

        def render() -> None:
            if not rows:
                dirs = ", ".join(str(d) for d in settings.runbook_search_path)
                out.print(f"no runbooks in {safe(dirs)}")
                return
            grid = new_table("name", "title", "steps", "source")
            for row in rows:
                title = (
                    safe(row["title"]) if row["valid"] else f"[red]invalid: {safe(row['error'])}[/]"
                )
                steps = safe(" -> ".join(row["steps"]))
                grid.add_row(safe(row["name"]), title, steps, safe(row["source"]))
            out.print(grid)

        emit(rows, output, render)


@app.command("show")
def show(ctx: typer.Context, name: str, output: OutputFormat = OutputOption) -> None:
    """A runbook's parameters, preconditions and steps."""
    from console.runbooks.loader import find_runbook

    with errors_as_exit():
        settings = context(ctx).settings
        loaded = find_runbook(name, settings.runbook_search_path, settings)
        rb = loaded.runbook
        data = rb.model_dump(mode="json", by_alias=True) | {"path": str(loaded.path)}

        def render() -> None:
            out.print(f"[bold]{safe(rb.name)}[/]  {safe(rb.title)}  ({safe(loaded.path)})")
            if rb.description:
                out.print(safe(rb.description.strip()))
            out.print(f"target: {safe(rb.target)}")
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
            out.print(params)
            for pre in rb.preconditions:
                out.print(f"precondition: {safe(pre.check)} {safe(pre.with_)}")
            steps = new_table("step", "action", "timeout", "retries", "compensate")
            for step in rb.steps:
                comp = (
                    step.compensate if isinstance(step.compensate, str) else step.compensate.action
                )
                steps.add_row(
                    safe(step.id), safe(step.action), step.timeout, str(step.retries), safe(comp)
                )
            out.print(steps)

        emit(data, output, render)


@app.command("validate")
def validate(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(..., help="Runbook files to check."),
    output: OutputFormat = OutputOption,
) -> None:
    """Check runbook files; report every problem as file:line: field: reason (literal values
    too: URLs and hosts against http_action.allowed_hosts, bounds, durations)."""
    from console.runbooks.loader import load_runbook

    with errors_as_exit():
        settings = context(ctx).settings
    results: list[dict[str, Any]] = []
    for path in files:
        try:
            load_runbook(path, settings)
            results.append({"path": str(path), "valid": True, "problems": []})
        except RunbookValidationError as exc:
            results.append({"path": str(path), "valid": False, "problems": exc.problems})

    def render() -> None:
        for result in results:
            if result["valid"]:
                out.print(f"[green]ok[/] {safe(result['path'])}")
            for problem in result["problems"]:
                out.print(f"[red]error[/] {safe(problem)}")

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
    wait: bool = typer.Option(
        True,
        "--wait/--no-wait",
        help="When the run needs approval: wait for it (default), or leave it pending and "
        "exit (`runbook resume RUN_ID` runs it once approved).",
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Plan a runbook from the real state, confirm, then apply it step by step. A run that
    needs approval waits, after its plan, for another operator to approve or deny it."""
    from console.cli.approvals import record_dict, request_and_wait
    from console.runbooks.approvals import not_usable
    from console.runbooks.engine import RunbookEngine
    from console.runbooks.loader import find_runbook
    from console.runbooks.params import parse_assignments

    with errors_as_exit():
        settings = context(ctx).settings
        loaded = find_runbook(name, settings.runbook_search_path, settings)
        engine = RunbookEngine(settings)
        plan = asyncio.run(engine.plan(loaded, parse_assignments(param)))
        need = engine.approval_for(plan)
        if output is OutputFormat.table:
            print_plan(plan, settings.read_only, settings.operator_source)
            if need is not None:
                out.print(f"[yellow]approval required[/]: {need.why}")
        if dry_run:
            if output is OutputFormat.json:
                approval = need.why if need else None
                write_json({"dry_run": True, "approval_required": approval, "plan": plan.to_dict()})
            return
        confirmed = yes or _ask(f"Apply {plan.loaded.runbook.name} to {plan.target}?", output)
        if need is not None:
            engine.refuse_read_only(plan.loaded.runbook.name)
            if not confirmed:
                raise ConfirmationRequired("not confirmed: nothing was requested")
            record = request_and_wait(engine, plan, need, output, wait)
            if record.status == "pending":
                resume = f"aml-console runbook resume {plan.run_id}"
                emit(record_dict(record) | {"next": resume}, output, lambda: None)
                return
            if record.status != "approved":
                raise not_usable(record)
            if output is OutputFormat.table:
                out.print(f"[green]approved[/] by {safe(record.decided_by or '')}")
        state = asyncio.run(engine.run(plan, confirmed=confirmed, on_event=progress(output)))
        report(state, output, plan)


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
        data = [run_dict(r) for r in runs]

        def render() -> None:
            if not runs:
                out.print("no unfinished runs" if not all_runs else "no runs")
                return
            grid = new_table(
                "run", "runbook", "target", "status", "operator", "started", "applied steps"
            )
            for r, d in zip(runs, data, strict=True):
                grid.add_row(
                    safe(r.run_id),
                    safe(r.runbook),
                    safe(r.target),
                    status_style(d["status"]),
                    safe(r.operator),
                    f"{r.created_at:%Y-%m-%d %H:%M:%S}Z",
                    safe(", ".join(f"{s['id']}({s['status']})" for s in d["applied"]) or "-"),
                )
            out.print(grid)
            if any(d["status"] in ("interrupted", "failed") for d in data):
                out.print(
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
        try:
            state = engine.store.load(run_id)
        except RunNotFound:
            if verb != "resume":
                raise
            _run_approved(engine, run_id, given, yes, output)
            return
        if output is OutputFormat.table:
            print_run(state)
        question = "Resume" if verb == "resume" else "Undo"
        if not (
            yes or _ask(f"{question} run {run_id} ({state.runbook} on {state.target})?", output)
        ):
            raise ConfirmationRequired(f"not confirmed: pass --yes to {verb}")
        call = engine.resume if verb == "resume" else engine.abort
        result = asyncio.run(call(run_id, given, on_event=progress(output)))
        report(result, output, expected="succeeded" if verb == "resume" else "aborted")


def _run_approved(
    engine: RunbookEngine, run_id: str, given: dict[str, Any], yes: bool, output: OutputFormat
) -> None:
    """`resume` of a run that never started: an approved request nobody waits for."""
    from console.cli.approvals import print_request
    from console.runbooks.approvals import not_usable

    async def read() -> ApprovalRecord:
        async with engine.approvals() as approvals:
            return await approvals.get(run_id)

    try:
        record = asyncio.run(read())
    except RunNotFound:
        raise RunNotFound(f"no run or approved request {run_id!r} (see `runbook status`)") from None
    if output is OutputFormat.table:
        print_request(record)
    if record.status != "approved":
        raise not_usable(record)
    question = f"Run {record.runbook} on {record.target}, approved by {record.decided_by}?"
    if not (yes or _ask(question, output)):
        raise ConfirmationRequired("not confirmed: pass --yes to run it")
    state = asyncio.run(engine.run_approved(run_id, given, on_event=progress(output)))
    report(state, output)


def _ask(question: str, output: OutputFormat) -> bool:
    if not sys.stdin.isatty() or output is OutputFormat.json:
        raise ConfirmationRequired(
            "refusing to apply without confirmation: stdin is not a terminal, pass --yes"
        )
    return typer.confirm(question, default=False)
