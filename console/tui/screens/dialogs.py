"""Small modal screens: the PromQL inspector, help, the `:` command line and the `/` filter,
and the confirmation before a runbook applies."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Static

from console.tui.help_text import HELP
from console.tui.skin import environment_style
from console.tui.text import printable
from console.views.queries import PanelQuery

if TYPE_CHECKING:
    from console.runbooks.planning import RunPlan


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


class ConfirmActionModal(ModalScreen[bool]):
    """The last word before a runbook changes anything: what, on which target, in which
    environment. Focus starts on Cancel, so a stray enter applies nothing."""

    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("y", "answer(True)", "Apply"),
        Binding("n,escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, question: Text, detail: Text) -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    @classmethod
    def for_plan(cls, plan: RunPlan) -> ConfirmActionModal:
        steps = [s.to_dict() for s in plan.steps]
        changes = sum(1 for s in steps if not s["noop"])
        question = Text("Apply ", style="bold")
        question.append(printable(plan.loaded.runbook.name), style="bold cyan")
        question.append(" to ", style="bold")
        question.append(printable(plan.target), style="bold cyan")
        question.append("?", style="bold")
        detail = Text(f"{changes} change(s), {len(steps) - changes} no-op(s) · environment ")
        detail.append(printable(plan.environment, 40), style=environment_style(plan.environment))
        detail.append(f" · operator {printable(plan.operator, 60)} · run {plan.run_id}")
        for i, step in enumerate(steps, 1):
            mark = "=" if step["noop"] else "~"
            detail.append(
                f"\n {mark} {i}. {printable(step['summary'], 160)}",
                style="dim" if step["noop"] else "",
            )
        return cls(question, detail)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm-dialog"):
            yield Static(self.question, id="confirm-question")
            yield Static(self.detail, id="confirm-detail")
            with Horizontal(id="confirm-buttons"):
                yield Button("Apply (y)", id="confirm-yes", variant="error")
                yield Button("Cancel (n / esc)", id="confirm-no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
