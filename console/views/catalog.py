"""The on-call views, declared once: name, number key and title, in the order they are listed.

Everything that names the views derives from this tuple: the TUI's number keys, its `?` help,
command palette and `:` completion, and `aml-console tui --view`. No Textual here, so the CLI
reads it without loading a UI toolkit. A view also needs its module in this package and its
screen in ``console/tui/screens`` (a ``ViewScreen`` whose ``VIEW`` is the name); the TUI checks
at import that declarations and screens match.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class ViewDeclaration:
    name: str
    """What `:name`, `--view name` and a screen's ``VIEW`` say."""
    key: str
    """The key that shows the view, everywhere in the TUI."""
    title: str
    """How the key bindings and the palette call it."""


VIEWS: tuple[ViewDeclaration, ...] = (
    ViewDeclaration("alerts", "1", "Alerts"),
    ViewDeclaration("clients", "2", "Clients"),
    ViewDeclaration("models", "3", "Models"),
    ViewDeclaration("mitigations", "4", "Mitigations"),
    ViewDeclaration("audit", "5", "Audit"),
    ViewDeclaration("samples", "6", "Samples"),
    ViewDeclaration("runbooks", "7", "Runbooks"),
    ViewDeclaration("drills", "8", "Drills"),
    ViewDeclaration("pending", "9", "Pending"),
    ViewDeclaration("incidents", "0", "Incidents"),
    ViewDeclaration("fleet", "f", "Fleet"),
)

VIEW_NAMES: tuple[str, ...] = tuple(view.name for view in VIEWS)


def declared(name: str) -> ViewDeclaration:
    """The declaration of the view called ``name`` (KeyError if there is none)."""
    for view in VIEWS:
        if view.name == name:
            return view
    raise KeyError(name)


def duplicates(views: tuple[ViewDeclaration, ...]) -> list[str]:
    """Names or keys that more than one view declares: each must reach exactly one view."""
    names = Counter(view.name for view in views)
    keys = Counter(view.key for view in views)
    return [f"name {name!r}" for name, count in names.items() if count > 1] + [
        f"key {key!r}" for key, count in keys.items() if count > 1
    ]
