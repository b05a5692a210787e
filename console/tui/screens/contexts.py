"""`:ctx`: the config's contexts, the one in use marked, as k9s lists its contexts. Enter
switches; escape keeps the current one."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from console.tui.text import printable


class ContextsScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("escape,q", "cancel", "Cancel")
    ]

    def __init__(self, names: list[str], current: str) -> None:
        super().__init__()
        self.names = names
        self.current = current

    def compose(self) -> ComposeResult:
        options = [
            Option(f"{'*' if name == self.current else ' '} {printable(name, 63)}", id=name)
            for name in self.names
        ]
        with Vertical(classes="dialog"):
            yield Static(Text("Contexts (enter switches, esc keeps)", style="bold underline"))
            yield OptionList(*options, id="contexts")

    def on_mount(self) -> None:
        option_list = self.query_one(OptionList)
        if self.current in self.names:
            option_list.highlighted = self.names.index(self.current)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
