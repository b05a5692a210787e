"""How a command ends: every error one line on stderr (``error: ...``), and the exit codes.

    0    done
    1    a ConsoleError: the command could not do what was asked (config errors included)
    2    usage: unknown option or command, missing argument, bad value or choice
    3    a drill whose attacker was not contained (``drill run``); a version that misses a
         threshold of ``[robustness]`` (``eval --gate``)
    70   internal error: a bug, reported on one line, never as a traceback
    130  interrupted

Click (which Typer vendors from 0.2x on) prints usage errors as a box of five to seven lines;
``ConsoleGroup`` runs the command tree in Click's non-standalone mode and prints them here
instead, for the console script, ``python -m console`` and ``CliRunner`` alike.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from console.cli.common import show_error
from console.errors import ConsoleError

FAILED = 1
USAGE = 2
INTERNAL = 70
INTERRUPTED = 130


class ConsoleGroup(TyperGroup):
    """The root command group: runs a command and turns whatever ends it into an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def call() -> Any:
            return super(ConsoleGroup, self).main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )

        if not standalone_mode:
            return call()
        sys.exit(exit_code(call))


def exit_code(call: Callable[[], Any]) -> int:
    """Run ``call`` (the command tree in non-standalone mode) and return its exit code, having
    printed the one line that says why when it is not 0."""
    try:
        result = call()
    except ConsoleError as exc:
        show_error(str(exc))
        return FAILED
    except typer.Abort:
        show_error("aborted")
        return FAILED
    except KeyboardInterrupt:
        show_error("interrupted")
        return INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - last line of defence: never a traceback
        usage = _click_error(exc)
        if usage is not None:
            return usage
        show_error(f"internal error ({type(exc).__name__}): {exc}")
        return INTERNAL
    # Non-standalone Click returns an Exit's code, or the command's own value (None).
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _click_error(exc: Exception) -> int | None:
    """The exit code of a Click exception after showing it on one line; None for anything
    else. Recognised by its shape: which module defines Click's classes depends on the Typer
    version (its own vendored copy, or Click itself)."""
    format_message = getattr(exc, "format_message", None)
    code = getattr(exc, "exit_code", None)
    if not callable(format_message) or not isinstance(code, int):
        return None
    message = str(format_message())
    if type(exc).__name__ == "NoArgsIsHelpError":
        # A group run without a command: its help, which Typer has already printed (rich)
        # or which is the message (plain Click). Help, not an error.
        if message.strip():
            sys.stderr.write(message.rstrip() + "\n")
        return code
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", "")
    hint = f" (see '{command} --help')" if command and code == USAGE else ""
    show_error(f"{message}{hint}")
    return code


__all__ = ["FAILED", "INTERNAL", "INTERRUPTED", "USAGE", "ConsoleGroup", "exit_code"]
