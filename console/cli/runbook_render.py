"""How the ``runbook`` commands print: plans, progress, results; and why a closed stdout
never stops a run.

``aml-console runbook run ... --yes | head -n 1`` closes the pipe after one line. Rich's
console would then exit (status 1, nothing on stderr) from inside the progress callback, in the
middle of a run. Here a closed stdout only stops the printing: the run completes, writes its
outcome and releases its leases, and the exit status is the run's own (0 when it succeeded),
with one line on stderr saying the output was cut.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console

from console.cli.common import OutputFormat, fail, one_line, safe, stderr

if TYPE_CHECKING:
    from console.runbooks.engine import RunEvent, RunPlan
    from console.runbooks.state import RunState


class PipeSafeConsole(Console):
    """Rich's console, except that a closed stdout (EPIPE) stops the printing instead of
    exiting the process."""

    closed = False

    def on_broken_pipe(self) -> None:
        self.closed = True
        self.quiet = True
        # Later writes, and the interpreter's last flush, go nowhere instead of failing.
        with contextlib.suppress(AttributeError, ValueError, OSError):
            fd = sys.stdout.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)


out = PipeSafeConsole(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def write_json(data: Any) -> None:
    if out.closed:
        return
    try:
        sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=True) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        out.on_broken_pipe()


def emit(data: Any, output: OutputFormat, render: Callable[[], None]) -> None:
    if output is OutputFormat.json:
        write_json(data)
    else:
        render()


def print_plan(plan: RunPlan, read_only: bool, operator_source: str = "") -> None:
    # Lines, not a table: the exact requests must never be cut to fit a terminal.
    rb = plan.loaded.runbook
    params = " ".join(f"{k}={v}" for k, v in plan.shown_params.items() if v is not None)
    out.print(
        f"[bold]plan[/] {safe(rb.name)} on {safe(plan.target)}  run {plan.run_id}  "
        f"operator {safe(plan.operator)}{f' ({safe(operator_source)})' if operator_source else ''}"
        f"  env {safe(plan.environment)}"
    )
    out.print(f"params: {safe(params)}")
    if plan.leases != [plan.target]:
        out.print(f"leases: {safe(', '.join(plan.leases))}")
    for i, step in enumerate(plan.steps, 1):
        d = step.to_dict()
        noop = " [dim](no-op: already in place)[/]" if d["noop"] else ""
        out.print(f"  {i}. [bold]{safe(d['id'])}[/] {safe(d['action'])}")
        out.print(f"     change:  {safe(d['summary'])}{noop}")
        for request in d["requests"]:
            out.print(f"     request: {safe(request)}")
    if read_only:
        out.print("[yellow]read-only mode: this plan cannot be applied[/]")


def progress(output: OutputFormat) -> Callable[[RunEvent], None]:
    def show(event: RunEvent) -> None:
        if output is OutputFormat.json:
            return
        if event.kind == "step-started":
            out.print(f"  -> {safe(event.step)}: {safe(event.summary)}")
        elif event.kind == "step-finished":
            mark = "[green]ok[/]" if event.status in ("applied", "noop") else "[red]failed[/]"
            extra = " (no-op: already in place)" if event.status == "noop" else ""
            err = f": {safe(one_line(event.error))}" if event.error else ""
            out.print(f"     {mark} {safe(event.step)}{extra}{err}")
        elif event.kind == "compensation-started":
            out.print(f"  <- undo {safe(event.step)}")
        elif event.kind == "compensation-finished":
            ok = event.status == "compensated"
            mark = "[green]undone[/]" if ok else f"[red]undo failed[/]: {safe(event.error or '')}"
            out.print(f"     {mark} {safe(event.step)}")

    return show


def report(
    state: RunState,
    output: OutputFormat,
    plan: RunPlan | None = None,
    expected: str = "succeeded",
) -> None:
    """The run's result; exits non-zero (one line on stderr) unless it is ``expected``."""
    data = {"run": run_dict(state)}
    if plan is not None:
        data["plan"] = plan.to_dict()
    if output is OutputFormat.json:
        write_json(data)
    else:
        approval = ""
        if state.approved_by:
            approval = f" (requested by {safe(state.requested_by)}, approved by "
            approval += f"{safe(state.approved_by)}, applied by {safe(state.operator)})"
        out.print(f"run {state.run_id}: {status_style(state.status)}{approval}")
        for key, value in state.outputs.items():
            out.print(f"  {safe(key)} = {safe(value)}")
    if state.status != expected:
        fail(f"run {state.run_id} {state.status}: {state.error or 'see audit show'}")
    if out.closed:
        stderr.print(
            f"[yellow]warning:[/] stdout was closed, so the output stopped; the run went on: "
            f"run {state.run_id} {state.status} (see `aml-console audit show {state.run_id}`)"
        )


def print_run(state: RunState) -> None:
    out.print(
        f"run {state.run_id}: {safe(state.runbook)} on {safe(state.target)}, "
        f"{status_style(state.effective_status)}"
    )
    for step in state.steps:
        out.print(f"  {safe(step.id)}: {safe(step.status)} {safe(step.summary)}")


def run_dict(state: RunState) -> dict[str, Any]:
    data = state.model_dump(mode="json")
    data["status"] = state.effective_status
    data["applied"] = [
        {"id": s.id, "action": s.action, "status": s.status, "summary": s.summary}
        for s in state.steps
        if s.status in ("applied", "applying", "compensation-failed", "noop")
    ]
    return data


def status_style(status: str) -> str:
    colour = {"succeeded": "green", "aborted": "yellow", "compensated": "yellow"}.get(status, "red")
    return f"[{colour}]{status}[/]"
