"""Which screen shows each declared view (``console/views/catalog.py``): the ``ViewScreen``
subclass whose ``VIEW`` is the view's name, in ``console/tui/screens/<name>.py``. A screen's
module is imported when the view is first shown (``screen_class``), so the console starts
with the first view's code only. ``all_view_screens`` (and ``VIEW_SCREENS``) imports the
whole screens package and checks it against the declarations: a declared view without a
screen, a screen of an undeclared view, or a name or key declared twice is an error."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from functools import cache
from types import ModuleType
from typing import Any

from console.tui.screens.base import ViewScreen
from console.views.catalog import VIEW_NAMES, VIEWS, ViewDeclaration, duplicates

ViewScreenClass = type[ViewScreen[Any]]
SCREENS_PACKAGE = "console.tui.screens"


class ViewCatalogError(Exception):
    """The declared views and the screens do not match (a programming error)."""


def _view_screens_of(module: ModuleType) -> list[ViewScreenClass]:
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ViewScreen)
        and value.__module__ == module.__name__
        and value.VIEW
    ]


def screens_in(package: ModuleType) -> list[ViewScreenClass]:
    """Every ViewScreen subclass with a VIEW defined in the package's modules."""
    found: list[ViewScreenClass] = []
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        found += _view_screens_of(importlib.import_module(info.name))
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
    problems += [
        f"{classes[0].__qualname__} shows view {view!r} but is not in {SCREENS_PACKAGE}.{view}"
        for view, classes in by_view.items()
        if view in declared and classes[0].__module__ != f"{SCREENS_PACKAGE}.{view}"
    ]
    if problems:
        raise ViewCatalogError("; ".join(problems) + " (see console/views/catalog.py)")
    return {name: by_view[name][0] for name in declared}


@cache
def screen_class(name: str) -> ViewScreenClass:
    """The screen of the declared view ``name``, importing its module (only) on first use."""
    if name not in VIEW_NAMES:
        raise ViewCatalogError(f"view {name!r} is not declared (see console/views/catalog.py)")
    try:
        module = importlib.import_module(f"{SCREENS_PACKAGE}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{SCREENS_PACKAGE}.{name}":
            raise
        raise ViewCatalogError(f"view {name!r} has no screen ({SCREENS_PACKAGE}.{name})") from None
    found = [screen for screen in _view_screens_of(module) if name == screen.VIEW]
    if len(found) != 1:
        raise ViewCatalogError(f"view {name!r} has {len(found)} screens in {module.__name__}")
    return found[0]


@cache
def all_view_screens() -> dict[str, ViewScreenClass]:
    """View name -> its screen for every declared view, checked against the declarations
    (imports every screen: for the checks and the tests, not for starting the console)."""
    from console.tui import screens

    return match(VIEWS, screens_in(screens))


def __getattr__(name: str) -> Any:
    # VIEW_SCREENS as a module attribute, computed when first read rather than at import.
    if name == "VIEW_SCREENS":
        return all_view_screens()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
