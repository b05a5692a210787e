"""``aml-console rules export DIR``: the Prometheus alert and recording rules the console ships,
with their promtool tests, copied out for a Prometheus, Mimir or Cortex ruler of one's own.

The layout is kept (``DIR/*.yml``, ``DIR/tests/*.yml``): the tests name the rule files by a
path relative to themselves (``../aml-alerts.yml``), so ``promtool test rules DIR/tests/*.yml``
works on the copy. A file already in DIR that differs from the shipped one is left alone unless
``--force``; then nothing at all is written. Files are 0644: rules are not secret.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import typer

from console.cli.common import (
    OutputFormat,
    OutputOption,
    errors_as_exit,
    fail,
    new_table,
    safe,
)
from console.cli.runbook_render import emit, out
from console.errors import ConsoleError

app = typer.Typer(help="The Prometheus rules the console ships.", no_args_is_help=True)

MODE = 0o644
Status = Literal["written", "unchanged", "overwritten"]


@dataclass(frozen=True)
class Export:
    source: Path
    target: Path
    status: Status


@app.command("export")
def export(
    directory: Path = typer.Argument(..., metavar="DIR", help="Where to write (made if missing)."),
    force: bool = typer.Option(
        False, "--force", help="Overwrite files in DIR that differ from the shipped ones."
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Write the alert and recording rules and their promtool tests into DIR."""
    from console.adapters import rule_files

    with errors_as_exit():
        plan = planned(rule_files.RULES_DIR, directory)
        differ = [e.target for e in plan if e.status == "overwritten"]
        if differ and not force:
            names = ", ".join(str(p) for p in differ[:3]) + (", ..." if len(differ) > 3 else "")
            fail(
                f"{len(differ)} file(s) in {directory} differ from the shipped rules ({names}): "
                "nothing written; --force overwrites them"
            )
        for entry in plan:
            if entry.status != "unchanged":
                write(entry.source.read_bytes(), entry.target)

    data = [{"path": str(e.target), "source": str(e.source), "status": e.status} for e in plan]

    def render() -> None:
        grid = new_table("file", "status")
        for e in plan:
            grid.add_row(safe(e.target), e.status)
        out.print(grid)
        out.print(
            f"check them with: promtool check rules {safe(directory)}/*.yml && "
            f"promtool test rules {safe(directory)}/tests/*.yml"
        )

    emit(data, output, render)


def planned(rules_dir: Path, directory: Path) -> list[Export]:
    """Each shipped file, where it goes in ``directory`` and what writing it would do."""
    sources = sorted(rules_dir.glob("*.yml")) + sorted((rules_dir / "tests").glob("*.yml"))
    if not any(p.parent == rules_dir for p in sources):
        raise ConsoleError(f"no rule files in {rules_dir}: the installation is incomplete")
    if directory.exists() and not directory.is_dir():
        raise ConsoleError(f"{directory} is not a directory")
    plan = []
    for source in sources:
        target = directory / source.relative_to(rules_dir)
        plan.append(Export(source, target, _status(source, target)))
    return plan


def _status(source: Path, target: Path) -> Status:
    try:
        if target.is_symlink() or target.exists():
            if not target.is_file():
                raise ConsoleError(f"{target} is in the way: not a regular file")
            return "unchanged" if target.read_bytes() == source.read_bytes() else "overwritten"
    except OSError as exc:
        raise ConsoleError(f"cannot read {target}: {exc.strerror or exc}") from None
    return "written"


def write(content: bytes, target: Path) -> None:
    """Atomically: a reader (a ruler reloading) never sees half a file; a link at ``target``
    is replaced, not followed."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                os.fchmod(handle.fileno(), MODE)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ConsoleError(f"cannot write {target}: {exc.strerror or exc}") from None
