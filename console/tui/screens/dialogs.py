"""Small modal screens: the PromQL inspector, help, the `:` command line and the `/` filter."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static

from console.views.queries import PanelQuery


class InspectScreen(ModalScreen[None]):
    """The PromQL behind the current view, as Grafana's query inspector shows it."""

    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("escape,i,q", "dismiss", "Close")
    ]

    def __init__(self, queries: tuple[PanelQuery, ...]) -> None:
        super().__init__()
        self.queries = queries

    def compose(self) -> ComposeResult:
        text = Text()
        for query in self.queries:
            text.append(f"{query.title}\n", style="bold")
            text.append(f"  {query.promql}\n\n", style="cyan")
        with Vertical(classes="dialog"):
            yield Static(Text("PromQL of this view (esc to close)", style="bold underline"))
            yield Static(text, id="queries")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


HELP = """\
Views         1 alerts  2 clients  3 models  4 mitigations  5 audit  6 samples
              :alerts :clients :models :mitigations :audit :samples client=ID
Everywhere    :  command line        /  filter rows        ?  this help
              r  refresh now         i  the PromQL of the view
              ctrl+p  command palette   q  quit (the lab keeps running)
Alerts        b  block the alert's client      c  contain-extraction
              s  silence the alert             enter  the client's samples and traces
Clients       b  block client   l  lower its query budget   u  unblock
Models        R  roll back the selected model (rollback-model runbook)
Mitigations   u  unblock the selected client   x  restore its budget
Runbooks      :run NAME key=value ...  plan, confirm with y, watch the steps
Read-only     action keys open the plan only; nothing is applied
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("escape,question_mark,q", "dismiss", "Close")
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text("Keys (esc to close)", style="bold underline"))
            yield Static(Text(HELP), id="help-text")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


class PromptScreen(ModalScreen[str | None]):
    """One line of input at the bottom: the `:` command line or the `/` filter."""

    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("escape", "cancel", "Cancel")
    ]

    def __init__(self, prompt: str, value: str = "", suggestions: list[str] | None = None):
        super().__init__()
        self.prompt = prompt
        self.value = value
        self.suggestions = suggestions or []

    def compose(self) -> ComposeResult:
        suggester = SuggestFromList(self.suggestions, case_sensitive=False)
        yield Input(
            value=self.value,
            placeholder=self.prompt,
            suggester=suggester if self.suggestions else None,
            id="prompt",
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
