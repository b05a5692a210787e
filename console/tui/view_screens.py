"""Which screen shows each declared view (``console/views/catalog.py``): the ``ViewScreen``
subclass in ``console/tui/screens`` whose ``VIEW`` is the view's name. Found by importing the
screens package, so a new view needs no list here; checked when the app is imported: a declared
view without a screen, a screen of an undeclared view, or a name or key declared twice is an
error before anything is drawn."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from console.tui import screens
from console.tui.screens.base import ViewScreen
from console.views.catalog import VIEWS, ViewDeclaration, duplicates

ViewScreenClass = type[ViewScreen[Any]]


class ViewCatalogError(Exception):
    """The declared views and the screens do not match (a programming error)."""


def screens_in(package: ModuleType) -> list[ViewScreenClass]:
    """Every ViewScreen subclass with a VIEW defined in the package's modules."""
    found: list[ViewScreenClass] = []
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        found += [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, ViewScreen)
            and value.__module__ == module.__name__
            and value.VIEW
        ]
    return found


def match(
    views: tuple[ViewDeclaration, ...], found: Iterable[ViewScreenClass]
) -> dict[str, ViewScreenClass]:
    """View name -> its screen, in the declared order."""
    by_view: dict[str, list[ViewScreenClass]] = {}
    for screen in found:
        by_view.setdefault(screen.VIEW, []).append(screen)
    declared = [view.name for view in views]
    problems = [f"declared twice: {what}" for what in duplicates(views)]
    problems += [f"view {name!r} has no screen" for name in declared if name not in by_view]
    problems += [
        f"{classes[0].__qualname__} shows view {view!r}, which is not declared"
        for view, classes in by_view.items()
        if view not in declared
    ]
    problems += [
        f"view {view!r} has {len(classes)} screens: " + ", ".join(c.__qualname__ for c in classes)
        for view, classes in by_view.items()
        if len(classes) > 1
    ]
    if problems:
        raise ViewCatalogError("; ".join(problems) + " (see console/views/catalog.py)")
    return {name: by_view[name][0] for name in declared}


VIEW_SCREENS: dict[str, ViewScreenClass] = match(VIEWS, screens_in(screens))
