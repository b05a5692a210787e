"""The console app: a thin router between the on-call views (k9s-style `:` commands, number
keys, the command palette) and the runbook dialog. Data comes from ``console.views`` through
the ``Backends`` given to the constructor, so tests and recorded harnesses can inject their own.

The views and their keys are declared in ``console/views/catalog.py``, their screens found by
``view_screens`` and made (their modules imported) when a view is first shown: the console
starts with the first view's code only. Screens get what they read in a ``ScreenContext`` and
ask for the rest (a dialog, another view, remembering a selection) with the messages of
``messages.py``, handled by the ``on_...`` methods at the end: no screen imports this module.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from console.adapters.backends import Backends
from console.config import Settings
from console.errors import ConsoleError
from console.tui import approval_watch
from console.tui.context import Contexts, ScreenContext
from console.tui.messages import (
    OpenLoadedRunbook,
    OpenReplay,
    OpenRunbook,
    RememberSelection,
    RunFinished,
    ShowSamples,
)
from console.tui.screens.base import ViewScreen
from console.tui.view_screens import screen_class
from console.views.catalog import VIEW_NAMES, VIEWS

if TYPE_CHECKING:
    from console.runbooks.loader import LoadedRunbook

COMMANDS = [*VIEW_NAMES, "ctx", "help", "note ", "quit", "run "]


class ConsoleApp(App[None]):
    TITLE = "aml-console"
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *(Binding(view.key, f"view({view.name!r})", view.title, show=False) for view in VIEWS),
        Binding("colon", "command_line", ":cmd"),
        Binding("slash", "filter", "/filter"),
        Binding("question_mark", "help", "?help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        settings: Settings,
        backends: Backends,
        *,
        start: str = "alerts",
        refresh_s: float = 2.0,
        hint: str | None = None,
        contexts: Contexts | None = None,
    ) -> None:
        super().__init__()
        if start not in VIEW_NAMES:
            raise ConsoleError(f"unknown view {start!r} (views: {', '.join(VIEW_NAMES)})")
        self.settings = settings
        self.backends = backends
        self.start = start
        self.refresh_s = refresh_s
        self.hint = hint
        self.contexts = contexts
        """Where `:ctx` finds the other contexts (None: this one only, e.g. a harness)."""
        self.current = start
        self.selection: dict[str, str] = {}
        """What was last selected in the views (client, model, alertname): the Runbooks view
        prefills a runbook's parameters of the same names from it."""
        self.screen_context = ScreenContext(
            settings, backends, refresh_s, self.selection, self.now, self.monotonic
        )
        """What every screen the app opens reads (bound methods: a subclass's clock counts)."""
        self.made_views: dict[str, ViewScreen[object]] = {}
        """The view screens made so far (a view's screen is made when it is first shown)."""

    def on_mount(self) -> None:
        self._install_views()
        self.push_screen(self.start)
        self.call_after_refresh(approval_watch.start, self, self.backends)  # toasts
        if self.hint:
            self.notify(self.hint, timeout=15)

    async def on_unmount(self) -> None:
        await self.backends.aclose()

    def _install_views(self) -> None:
        self.made_views = {}
        for name in VIEW_NAMES:
            # Textual makes an installed callable's screen on the first get_screen/push (as
            # with App.SCREENS); install_screen's annotation names only Screen.
            self.install_screen(partial(self._make_view, name), name)  # type: ignore[arg-type]

    def _make_view(self, name: str) -> ViewScreen[object]:
        screen: ViewScreen[object] = screen_class(name)(self.screen_context)
        self.made_views[name] = screen
        return screen

    def list_contexts(self) -> None:
        from console.tui.screens.contexts import ContextsScreen

        if self.contexts is None:
            self.notify(f"context {self.settings.context} (no other contexts here)")
            return
        try:
            names = self.contexts.names()
        except ConsoleError as exc:
            self.notify(str(exc), severity="error")
            return
        self.push_screen(ContextsScreen(names, self.settings.context), self._switch_if_chosen)

    def _switch_if_chosen(self, name: str | None) -> None:
        if name:
            self.switch_context(name)

    def switch_context(self, name: str) -> None:
        """Every view on the settings and clients of context ``name``: the screens are made
        again on a new ``Backends`` (the old clients close in the background), so colour,
        read-only and every panel follow. Refused while a run is in progress."""
        from console.tui.screens.runbook import RunbookScreen

        if name == self.settings.context:
            self.notify(f"already on context {name}")
            return
        if any(isinstance(s, RunbookScreen) and s.running for s in self.screen_stack):
            self.notify("a run is in progress: let it finish before :ctx", severity="error")
            return
        if self.contexts is None:
            self.notify("no other contexts here", severity="error")
            return
        try:
            settings = self.contexts.open(name)
        except ConsoleError as exc:
            self.notify(str(exc), severity="error")
            return
        old = self.backends
        while len(self.screen_stack) > 2:  # dialogs above the view: made for the old context
            self.pop_screen()
        self.settings, self.backends = settings, Backends(settings, metrics=old.metrics)
        approval_watch.start(self, self.backends)  # the new context's requests
        self.screen_context = ScreenContext(
            settings, self.backends, self.refresh_s, self.selection, self.now, self.monotonic
        )
        self.selection.clear()  # a client of one context means nothing in another
        others = [s for s in self.made_views.values() if s is not self.screen]
        view = screen_class(self.current)(self.screen_context)
        self.switch_screen(view)  # the old named screens leave the stack, then are dropped
        for screen_name in VIEW_NAMES:
            self.uninstall_screen(screen_name)
        self._install_views()
        self.switch_screen(self.current)
        for old_view in others:  # made earlier, not on the stack: would refresh on old clients
            if old_view.is_attached:
                old_view.remove()
        self.run_worker(old.aclose(), group="close-backends", exit_on_error=False)
        self.notify(f"context {name} ({settings.environment})")

    def now(self) -> datetime:
        """Wall-clock time for ages and expiries (a recorded harness freezes it)."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """The clock of the data's age on the status badges."""
        return time.monotonic()

    def view(self, name: str) -> ViewScreen[object]:
        screen = self.get_screen(name)
        assert isinstance(screen, ViewScreen)
        return screen

    def action_view(self, name: str) -> None:
        if name not in VIEW_NAMES:
            self.notify(f"unknown view {name!r}", severity="error")
            return
        if isinstance(self.screen, ViewScreen):
            self.switch_screen(name)
        else:
            self.push_screen(name)
        self.current = name

    def action_help(self) -> None:
        from console.tui.screens.dialogs import HelpScreen

        self.push_screen(HelpScreen())

    def action_command_line(self) -> None:
        from console.runbooks.loader import runbook_files
        from console.tui.screens.dialogs import PromptScreen

        runbooks = [f"run {p.stem}" for p in runbook_files(self.settings.runbook_search_path)]
        suggestions = [*COMMANDS, *runbooks, "samples client=", "replay client="]
        self.push_screen(PromptScreen(":command", suggestions=suggestions), self._run_command)

    def action_filter(self) -> None:
        screen = self.screen
        if not isinstance(screen, ViewScreen):
            return
        from console.tui.screens.dialogs import PromptScreen

        self.push_screen(PromptScreen("/filter (empty clears)"), screen.apply_filter_or_none)

    def _run_command(self, line: str | None) -> None:
        from console.tui.screens.runbook import params_from_words

        head_word, _, note = (line or "").strip().lstrip(":").partition(" ")
        if head_word.lower() == "note":  # free text, not words: "it's" must not fail shlex
            self.run_worker(self._note(note), group="incident-note", exit_on_error=False)
            return
        words = shlex.split((line or "").strip().lstrip(":")) if line else []
        if not words:
            return
        head, rest = words[0].lower(), words[1:]
        if head in ("samples", "replay") and rest:
            try:
                params = params_from_words(rest)
            except ValueError as exc:
                self.notify(str(exc), severity="error")
                return
            if head == "samples":
                self.show_samples(params.get("client"), params.get("model"))
            else:
                self.open_replay(params.get("client"), params.get("model"), params.get("alert"))
        elif head in VIEW_NAMES:
            self.action_view(head)
        elif head in ("ctx", "context", "contexts"):
            if rest:
                self.switch_context(rest[0])
            else:
                self.list_contexts()
        elif head in ("help", "h", "?"):
            self.action_help()
        elif head in ("quit", "q"):
            self.exit()
        elif head == "run" and rest:
            try:
                params = params_from_words(rest[1:])
            except ValueError as exc:
                self.notify(str(exc), severity="error")
                return
            self.open_runbook(rest[0], params)
        else:
            self.notify(f"unknown command {head!r}; try :help", severity="error")

    async def _note(self, text: str) -> None:
        """`:note TEXT`: a note on the current open incident (the newest open one)."""
        from console.tui.screens.incidents import note_current

        message, severity = await note_current(self.settings, text)
        self.notify(message, severity=severity, markup=False)
        if "incidents" in self.made_views:
            self.made_views["incidents"].action_refresh_now()

    def remember(self, **selected: str | None) -> None:
        self.selection.update({k: v for k, v in selected.items() if v})

    def open_runbook(self, name: str, params: dict[str, str]) -> None:
        from console.runbooks.loader import find_runbook

        try:
            loaded = find_runbook(name, self.settings.runbook_search_path)
        except ConsoleError as exc:
            self.notify(str(exc), severity="error")
            return
        self.open_loaded_runbook(loaded, params)

    def open_loaded_runbook(self, loaded: LoadedRunbook, params: dict[str, str]) -> None:
        from console.tui.screens.runbook import RunbookScreen

        self.push_screen(RunbookScreen(self.settings, loaded, params))

    def open_replay(
        self, client: str | None, model: str | None = None, alert: str | None = None
    ) -> None:
        """The client's (or the alert's) sampled inputs through champion and previous."""
        from console.replay.model import ReplayRequest
        from console.tui.screens.replay import LIMIT, ReplayScreen

        scope = f"alert {alert}" if alert else f"client {client or 'every client'}"
        if model:
            scope += f" on {model}"
        request = ReplayRequest(model=model, client=client, alert=alert, limit=LIMIT)
        self.push_screen(ReplayScreen(self.screen_context, request, scope))

    def show_samples(self, client: str | None, model: str | None = None) -> None:
        from console.tui.screens.samples import SamplesScreen

        screen = self.get_screen("samples")
        assert isinstance(screen, SamplesScreen)
        screen.scope(client, model)
        self.action_view("samples")

    def refresh_views(self) -> None:
        """Refresh every view made so far (one not yet shown reads its data when it is)."""
        for screen in self.made_views.values():
            screen.action_refresh_now()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for view in VIEWS:
            yield SystemCommand(
                f"{view.title} view",
                f"Show the {view.name} view",
                lambda n=view.name: self.action_view(n),
            )
        yield SystemCommand("Keys", "Every key of the console", self.action_help)

    # What the screens ask for (console/tui/messages.py).

    def on_open_runbook(self, message: OpenRunbook) -> None:
        self.open_runbook(message.name, message.params)

    def on_open_loaded_runbook(self, message: OpenLoadedRunbook) -> None:
        self.open_loaded_runbook(message.loaded, message.params)

    def on_open_replay(self, message: OpenReplay) -> None:
        self.open_replay(message.client, message.model, message.alert)

    def on_show_samples(self, message: ShowSamples) -> None:
        self.show_samples(message.client, message.model)

    def on_remember_selection(self, message: RememberSelection) -> None:
        self.remember(**message.selected)

    def on_run_finished(self, message: RunFinished) -> None:
        self.refresh_views()  # blocks, budgets and aliases may have changed
