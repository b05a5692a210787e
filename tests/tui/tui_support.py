"""Driving the TUI in tests: the app on a stack, and waiting on what it shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lab_stack import LabStack
from textual.pilot import Pilot

from console.adapters.backends import Backends
from console.config import Settings
from console.tui.app import ConsoleApp


def make_app(settings: Settings, **kwargs: Any) -> ConsoleApp:
    kwargs.setdefault("refresh_s", 0.5)
    return ConsoleApp(settings, Backends(settings), **kwargs)


def stack_app(stack: LabStack, **kwargs: Any) -> ConsoleApp:
    return make_app(stack.settings, **kwargs)


async def until(pilot: Pilot[Any], check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await pilot.pause(0.1)


def cells(app: ConsoleApp, table_id: str) -> list[list[str]]:
    """The plain text of every cell of a DataTable of the current screen."""
    table = app.screen.query_one(table_id)
    return [
        [getattr(c, "plain", str(c)) for c in table.get_row_at(i)]  # type: ignore[attr-defined]
        for i in range(table.row_count)
    ]  # type: ignore[attr-defined]
