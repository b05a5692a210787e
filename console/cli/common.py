"""What every command shares: the settings context, ``--output``, and how errors are shown."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from console.errors import ConsoleError
from console.urls import redact_urls_in

if TYPE_CHECKING:
    from console.config import Settings


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    """Offered by ``get`` only (console/cli/get.py); ``OutputOption`` refuses it."""


def _table_or_json(value: OutputFormat) -> OutputFormat:
    if value is OutputFormat.csv:
        raise typer.BadParameter("csv is offered by `aml-console get` only: use table or json")
    return value


OutputOption = typer.Option(
    OutputFormat.table,
    "--output",
    "-o",
    help="table for people, json for scripts.",
    callback=_table_or_json,
)

# Piped output (scripts, CI logs) gets a wide page so tables do not cut ids short.
stdout = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class CliContext:
    config_path: Path | None = None
    context: str | None = None
    read_only: bool | None = None
    operator: str | None = None
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self.settings_of(self.context)
        return self._settings

    def settings_of(self, context: str | None) -> Settings:
        """The settings of ``context`` of the same config file, with this command line's
        ``--read-only`` and ``--operator``."""
        from console.config import load_settings

        overrides: dict[str, Any] = {}
        if self.read_only:
            overrides["read_only"] = True
        if self.operator is not None:
            overrides["operator"] = self.operator
        return load_settings(self.config_path, context, **overrides)

    def context_names(self) -> list[str]:
        from console.config_files import find_config, read_config

        return list(read_config(find_config(self.config_path)).contexts)


def context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliContext):  # a sub-app invoked on its own, e.g. in tests
        obj = CliContext()
        ctx.find_root().obj = obj
    return obj


def new_table(*columns: str) -> Table:
    """A borderless table whose cells wrap instead of being cut with an ellipsis."""
    grid = Table(box=None, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    return grid


def show_error(message: str) -> None:
    """``error: message`` as one line on stderr, with any credentials in URLs cut out (a last
    line of defence: adapters redact their own messages)."""
    stderr.print(f"[bold red]error:[/] {safe(one_line(redact_urls_in(message)))}")


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, no traceback, non-zero exit."""
    show_error(message)
    raise typer.Exit(code)


def one_line(text: str) -> str:
    return " ".join(text.split())


@contextmanager
def errors_as_exit() -> Iterator[None]:
    try:
        yield
    except ConsoleError as exc:
        fail(str(exc))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=True) + "\n")


def emit(data: Any, output: OutputFormat, render: Callable[[], None]) -> None:
    if output is OutputFormat.json:
        print_json(data)
    else:
        render()


def safe(text: object) -> str:
    """Text from a backend or a parameter, escaped so it is never read as Rich markup
    and stripped of control characters (no terminal escape sequences reach the screen)."""
    raw = str(text)
    cleaned = "".join(
        ch if ch.isprintable() or ch == " " else "\N{REPLACEMENT CHARACTER}" for ch in raw
    )
    return escape(cleaned)
