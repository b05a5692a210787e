"""``audit tail|show|verify``: read and check the audit log.

Everything shown comes from the log and may hold attacker-controlled text (client ids,
targets), so every cell goes through ``safe()``: markup and escape sequences print as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from console.cli.common import (
    OutputFormat,
    OutputOption,
    context,
    emit,
    errors_as_exit,
    fail,
    one_line,
    safe,
    stderr,
    stdout,
)
from console.errors import AuditError

if TYPE_CHECKING:
    from console.audit.records import AuditRecord

# The audit package (pydantic models) loads inside the commands: `--help` stays fast.

app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)


@app.command()
def tail(
    ctx: typer.Context,
    n: int = typer.Option(20, "-n", "--lines", min=1, help="How many records."),
    output: OutputFormat = OutputOption,
) -> None:
    """The last records of the audit log."""
    with errors_as_exit():
        settings = context(ctx).settings
        from console.audit.log import AuditLog

        records = AuditLog(settings.audit_path, None).tail(n)
    emit(
        [r.model_dump(mode="json") for r in records],
        output,
        lambda: _print_records(records, with_run=True),
    )


@app.command()
def show(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="Run id."),
    output: OutputFormat = OutputOption,
) -> None:
    """Every record of one run, in order."""
    with errors_as_exit():
        settings = context(ctx).settings
        from console.audit.log import AuditLog

        records = AuditLog(settings.audit_path, None).records(run_id)
    if not records:
        fail(f"no audit records for run {run_id}")
    emit(
        [r.model_dump(mode="json") for r in records],
        output,
        lambda: _print_records(records, with_run=False),
    )


@app.command()
def verify(
    ctx: typer.Context,
    path: Path | None = typer.Option(None, "--path", help="Log to verify (default: configured)."),
    output: OutputFormat = OutputOption,
) -> None:
    """Check every record, the chain and the checkpoint. Exit 1 on the first bad record."""
    with errors_as_exit():
        settings = context(ctx).settings
        key = settings.audit_key()
        log_path = path or settings.audit_path
        # A log other than the configured one is checked against its own sibling checkpoint.
        same = path is None or path.resolve() == settings.audit_path.resolve()
        from console.audit.log import default_checkpoint_path
        from console.audit.verify import verify_log

        cp_path = settings.audit_checkpoint_path if same else default_checkpoint_path(log_path)
        if key is None:
            raise AuditError(
                "no audit HMAC key configured (set CONSOLE_AUDIT__HMAC_KEY or "
                "audit.hmac_key_file): cannot verify the audit log"
            )
        from console.audit.witness import witness_path_for

        witness = witness_path_for(settings, None if same else log_path)
        report = verify_log(log_path, key, cp_path, witness)
    if output is OutputFormat.json:
        emit(report.to_dict(), output, lambda: None)
    else:
        for warning in report.warnings:
            stderr.print(f"[yellow]warning:[/] {safe(one_line(warning))}")
        if report.ok:
            stdout.print(safe(report.summary()))
    if not report.ok:
        if output is OutputFormat.json:
            raise typer.Exit(1)
        fail(report.summary())


@app.command("reset-witness")
def reset_witness(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", help="Confirm: accept the log as it is now."),
) -> None:
    """Point the log's witness at the log's own head, after a deliberate reset of the log.

    Until then every append to a log behind its witness (or started afresh where the witness
    knows a head) is refused. The reset is itself a record in the log.
    """
    with errors_as_exit():
        settings = context(ctx).settings
        if not yes:
            raise AuditError("resetting the witness accepts the log as it is now: pass --yes")
        if settings.read_only:
            raise AuditError("read-only mode: resetting the audit witness was refused")
        from console.audit.log import AuditLog
        from console.audit.reset import reset_witness as reset

        done = reset(AuditLog.from_settings(settings), settings.operator, settings.environment)
    stdout.print(safe(done.summary()))


def _print_records(records: list[AuditRecord], with_run: bool) -> None:
    table = Table()
    # A run's records can have several operators now (requester, approver, who applied it).
    columns = ["seq", "time", "operator"]
    if with_run:
        columns += ["run"]
    columns += ["kind", "step", "action", "target", "result", "error"]
    for name in columns:
        table.add_column(name, overflow="fold")
    for r in records:
        cells = [str(r.seq), r.time.strftime("%Y-%m-%d %H:%M:%SZ"), r.operator]
        if with_run:
            cells += [r.run_id]
        cells += [r.kind, r.step or "", r.action or "", r.target or "", r.result or ""]
        cells.append(one_line(r.error or ""))
        table.add_row(*(safe(c) for c in cells))
    # Piped output (grep, less, a ticket) gets the table's natural width instead of being
    # folded into 80 columns; a terminal gets its own width.
    out = stdout
    if not stdout.is_terminal:
        width = stdout.measure(table, options=stdout.options.update(max_width=4096)).maximum
        out = Console(file=stdout.file, width=width, highlight=False, soft_wrap=True)
    out.print(table)
