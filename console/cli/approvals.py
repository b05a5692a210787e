"""``aml-console approvals``, ``approve RUN_ID``, ``deny RUN_ID --reason``; and the wait of a
``runbook run`` whose plan needs another operator's approval."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from console.cli.common import (
    OutputFormat,
    OutputOption,
    context,
    errors_as_exit,
    new_table,
    safe,
    stderr,
)
from console.cli.exits import INTERRUPTED
from console.cli.runbook_render import emit, out
from console.errors import ConfirmationRequired, ConsoleError

if TYPE_CHECKING:
    from console.adapters.approval_store import ApprovalRecord
    from console.runbooks.approvals import ApprovalRequirement
    from console.runbooks.engine import RunbookEngine, RunPlan

YesOption = typer.Option(False, "--yes", "-y", help="Decide without asking.")


def record_dict(record: ApprovalRecord) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    data["expires_in_s"] = round(record.left_s(), 1)
    return data


def _left(record: ApprovalRecord) -> str:
    seconds = int(record.left_s())
    return f"{seconds // 60}m{seconds % 60:02d}s"


def print_request(record: ApprovalRecord) -> None:
    out.print(
        f"[bold]run {safe(record.run_id)}[/] {safe(record.runbook)} on {safe(record.target)}  "
        f"requested by {safe(record.requester)}  env {safe(record.environment)}  "
        f"[{_status_style(record.status)}]{record.status}[/]"
    )
    out.print(f"why: {safe(record.why)}")
    params = " ".join(f"{k}={v}" for k, v in record.params.items() if v is not None)
    out.print(f"params: {safe(params)}")
    if record.approvers:
        out.print(f"approvers: {safe(', '.join(record.approvers))}")
    for i, step in enumerate(record.plan.get("steps", []), 1):
        out.print(f"  {i}. {safe(step.get('id', ''))}: {safe(step.get('summary', ''))}")
    if record.decided_by:
        verb = "approved" if record.status in ("approved", "used") else record.status
        reason = f": {safe(record.reason)}" if record.reason else ""
        out.print(f"{verb} by {safe(record.decided_by)}{reason}")
    if record.used_by:
        out.print(f"used by {safe(record.used_by)} at {record.used_at:%H:%M:%S}Z")
    if record.status in ("pending", "approved"):
        out.print(f"expires in {_left(record)} ({record.expires_at:%H:%M:%S}Z)")


def _status_style(status: str) -> str:
    return {"pending": "yellow", "approved": "green", "denied": "red"}.get(status, "dim")


def list_approvals(
    ctx: typer.Context,
    all_requests: bool = typer.Option(False, "--all", help="Decided and expired ones too."),
    output: OutputFormat = OutputOption,
) -> None:
    """Approval requests of this context: pending ones, or every one still kept (--all)."""
    from console.adapters.approval_store import LIST_LIMIT
    from console.runbooks.engine import RunbookEngine

    notes: list[str] = []

    async def read() -> list[ApprovalRecord]:
        async with RunbookEngine(context(ctx).settings).approvals() as approvals:
            found = await (approvals.newest() if all_requests else approvals.pending())
            store = approvals.store
            if store.skipped:
                notes.append(f"{store.skipped} stored values are not readable requests")
            if store.total > LIST_LIMIT:
                notes.append(f"the newest {LIST_LIMIT} of {store.total} requests were read")
            return found

    with errors_as_exit():
        records = asyncio.run(read())
        store_note = "; ".join(notes)

        def render() -> None:
            if not records:
                out.print("no pending approval requests" if not all_requests else "none kept")
                return
            grid = new_table("run", "runbook", "target", "requester", "status", "expires", "why")
            for r in records:
                grid.add_row(
                    safe(r.run_id),
                    safe(r.runbook),
                    safe(r.target),
                    safe(r.requester),
                    f"[{_status_style(r.status)}]{r.status}[/]",
                    _left(r) if r.status in ("pending", "approved") else "-",
                    safe(r.why),
                )
            out.print(grid)
            if store_note:
                stderr.print(f"[yellow]warning:[/] {store_note}")

        emit([record_dict(r) for r in records], output, render)


def approve(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="The run waiting for approval (`approvals`)."),
    yes: bool = YesOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Approve another operator's run: it then proceeds (or `runbook resume RUN_ID` runs it)."""
    _decide(ctx, run_id, None, yes, output)


def deny(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="The run waiting for approval (`approvals`)."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why: the requester sees it."),
    yes: bool = YesOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Deny a run waiting for approval (its requester may withdraw their own this way)."""
    _decide(ctx, run_id, reason, yes, output)


def _decide(
    ctx: typer.Context, run_id: str, reason: str | None, yes: bool, output: OutputFormat
) -> None:
    from console.runbooks.engine import RunbookEngine

    verb = "approve" if reason is None else "deny"
    with errors_as_exit():
        engine = RunbookEngine(context(ctx).settings)

        async def decide() -> ApprovalRecord:
            async with engine.approvals() as approvals:
                record = await approvals.verified(run_id)
                if output is OutputFormat.table:
                    print_request(record)
                question = f"{verb.capitalize()} run {run_id} as {engine.settings.operator}?"
                if not (yes or _ask(question, output)):
                    raise ConfirmationRequired(f"not confirmed: pass --yes to {verb}")
                if reason is None:
                    return await approvals.approve(run_id)
                return await approvals.deny(run_id, reason)

        record = asyncio.run(decide())
        emit(
            record_dict(record),
            output,
            lambda: out.print(f"[bold]{record.status}[/] run {safe(run_id)}"),
        )


def _ask(question: str, output: OutputFormat) -> bool:
    if not sys.stdin.isatty() or output is OutputFormat.json:
        raise ConfirmationRequired("refusing to decide without confirmation: pass --yes")
    return typer.confirm(question, default=False)


def request_and_wait(
    engine: RunbookEngine,
    plan: RunPlan,
    need: ApprovalRequirement,
    output: OutputFormat,
    wait: bool,
) -> ApprovalRecord:
    """Ask for approval, then wait for the decision (Ctrl-C leaves the request pending)."""
    record = asyncio.run(engine.request_approval(plan, need))
    until = f"{record.expires_at:%H:%M:%S}Z"
    resume = f"`aml-console runbook resume {record.run_id}`"
    if output is OutputFormat.table:
        who = f" (one of {', '.join(record.approvers)})" if record.approvers else ""
        out.print(
            f"run {record.run_id} waits for another operator{safe(who)} until {until}: "
            f"`aml-console approve {record.run_id}` or `aml-console deny {record.run_id} "
            "--reason ...`"
        )
    if not wait:
        if output is OutputFormat.table:
            out.print(f"not waiting: once approved, {resume} runs it")
        return record
    shown = [datetime.now(UTC)]

    def tick(current: ApprovalRecord) -> None:
        now = datetime.now(UTC)
        if output is OutputFormat.table and (now - shown[0]).total_seconds() >= 30:
            shown[0] = now
            stderr.print(f"still waiting for approval of run {record.run_id} ({_left(current)})")

    try:
        return asyncio.run(engine.wait_for_approval(record.run_id, tick))
    except ConsoleError as exc:
        exc.message = f"{exc.message}; the request stays pending until {until}: once approved, "
        exc.message += f"{resume} runs it"
        raise
    except KeyboardInterrupt:
        stderr.print(
            f"stopped waiting; the request stays pending until {record.expires_at:%H:%M:%S}Z. "
            f"Once approved, `aml-console runbook resume {record.run_id}` runs it"
        )
        raise typer.Exit(INTERRUPTED) from None
