"""A panel's data state, as Grafana shows it: live (with its age), stale (the last good data,
with why the refresh failed), error (no data ever, and why), no data (the source answered
with nothing), plus the source's warnings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.widgets import Static

from console.tui.text import age, printable

State = Literal["loading", "live", "stale", "error", "empty"]


@dataclass
class PanelState:
    state: State = "loading"
    last_ok: float | None = None
    """time.monotonic() of the last good refresh."""
    error: str | None = None
    warnings: tuple[str, ...] = ()

    def succeeded(
        self, empty: bool, warnings: tuple[str, ...] = (), now: float | None = None
    ) -> None:
        self.state = "empty" if empty else "live"
        self.last_ok = time.monotonic() if now is None else now
        self.error, self.warnings = None, warnings

    def failed(self, error: str) -> None:
        self.state = "stale" if self.last_ok is not None else "error"
        self.error = error


class StatusBadge(Static):
    """One line: state, age of the data, reason and warnings. Updated every second."""

    DEFAULT_CSS = """
    StatusBadge { height: 1; width: 1fr; }
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        id: str | None = None,  # noqa: A002 - Textual's name
    ) -> None:
        super().__init__("", id=id)
        self.clock = clock
        """The clock of PanelState.last_ok (the app's: a recorded harness freezes it)."""
        self.panel = PanelState()

    def on_mount(self) -> None:
        self.set_interval(1.0, self.show)

    def show(self) -> None:
        self.update(render_badge(self.panel, self.clock()))


def render_badge(panel: PanelState, now: float) -> Text:
    since = age(now - panel.last_ok) if panel.last_ok is not None else ""
    if panel.state == "loading":
        text = Text("… loading", style="dim")
    elif panel.state == "live":
        text = Text(f"● live · {since} ago", style="green")
    elif panel.state == "empty":
        text = Text(f"○ no data · {since} ago", style="yellow")
    elif panel.state == "stale":
        text = Text(f"◌ STALE · last good {since} ago · ", style="bold yellow")
        text.append(printable(panel.error, 160), style="yellow")
    else:
        text = Text("✖ ERROR · ", style="bold red")
        text.append(printable(panel.error, 160), style="red")
    for warning in panel.warnings:
        text.append("  ⚠ " + printable(warning, 120), style="magenta")
    return text
