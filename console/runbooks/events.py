"""Progress of a run, as the CLI and the TUI are told about it (they render; the engine runs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class RunEvent:
    kind: str
    """locked, step-started, step-finished, compensation-started, compensation-finished,
    run-finished."""
    run_id: str
    step: str | None = None
    status: str | None = None
    summary: str = ""
    error: str | None = None


EventSink = Callable[[RunEvent], None]


def ignore_events(event: RunEvent) -> None:
    return None
