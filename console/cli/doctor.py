"""``aml-console doctor``: is every endpoint of the context there, and what the console needs?"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

from console.cli.common import OutputFormat, OutputOption, context, emit, errors_as_exit, safe
from console.cli.common import stdout as out

if TYPE_CHECKING:
    from console.doctor import EndpointReport

# The doctor service and its adapters load inside the command, so `--help` stays fast.


def doctor(
    ctx: typer.Context,
    output: OutputFormat = OutputOption,
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        min=0.1,
        help="Seconds each endpoint may take for all its checks (default: 15).",
    ),
) -> None:
    """Check every endpoint: reachable, authenticated, version, and what the console needs
    from it. Exit 0 only when every check passes."""
    with errors_as_exit():
        settings = context(ctx).settings
        from console.doctor import DEADLINE_S, run_doctor

        reports = asyncio.run(run_doctor(settings, timeout or DEADLINE_S))
    emit([r.to_dict() for r in reports], output, lambda: _render(reports))
    raise typer.Exit(0 if all(r.ok for r in reports) else 1)


def _render(reports: list[EndpointReport]) -> None:
    for index, report in enumerate(reports):
        if index:
            out.print()
        mark = "[green]✓[/]" if report.ok else "[red]✗[/]"
        facts = [safe(report.url)]
        if report.latency_ms is not None:
            facts.append(f"{report.latency_ms:g} ms")
        if report.version:
            facts.append(safe(report.version))
        out.print(f"{mark} [bold]{safe(report.name)}[/]  " + "  ".join(facts))
        width = max((len(c.name) for c in report.checks), default=0)
        for check in report.checks:
            tick = "[green]✓[/]" if check.ok else "[red]✗[/]"
            out.print(f"    {tick} {safe(check.name.ljust(width))}  {safe(check.detail)}")
            if not check.ok and check.hint:
                out.print(f"      [yellow]→ {safe(check.hint)}[/]")
    failed = sum(1 for r in reports if not r.ok)
    out.print()
    if failed:
        out.print(f"[red]{failed} of {len(reports)} endpoints failed a check[/]")
    else:
        out.print(f"[green]all {len(reports)} endpoints pass[/]")
