"""What the app hands down to the screens it opens: settings, backends, the refresh interval,
the selection it remembers and its clock. Screens read these and ask for anything else with a
message (``console/tui/messages.py``), so no screen depends on the app."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from console.adapters.backends import Backends
from console.config import Settings


@dataclass(frozen=True)
class ScreenContext:
    settings: Settings
    backends: Backends
    refresh_s: float
    """Seconds between the end of a view's refresh and the start of the next."""
    selection: Mapping[str, str]
    """The app's own selection (client, model, alertname): current, not a copy."""
    now: Callable[[], datetime]
    """Wall-clock time for ages and expiries (a recorded harness freezes it)."""
    monotonic: Callable[[], float]
    """The clock of the data's age on the status badges."""


@dataclass(frozen=True)
class Contexts:
    """The contexts of the config file (``:ctx``): their names, and the settings of one with
    the command line's overrides (``--read-only``, ``--operator``) applied again."""

    names: Callable[[], list[str]]
    open: Callable[[str], Settings]
