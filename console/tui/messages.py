"""What a screen asks of the app. A screen posts one of these and ConsoleApp's ``on_...``
handler acts on it (the message bubbles from the screen to the app); screens never call the
app, they read what it handed them (``console/tui/context.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from console.runbooks.loader import LoadedRunbook


class OpenRunbook(Message):
    """The runbook dialog on the runbook of this name (looked up in the runbook folders)."""

    def __init__(self, name: str, params: dict[str, str]) -> None:
        super().__init__()
        self.name = name
        self.params = params


class OpenLoadedRunbook(Message):
    """The runbook dialog on a runbook already loaded (the Runbooks view's row)."""

    def __init__(self, loaded: LoadedRunbook, params: dict[str, str]) -> None:
        super().__init__()
        self.loaded = loaded
        self.params = params


class OpenReplay(Message):
    """The client's (or the alert's) sampled inputs through champion and previous."""

    def __init__(
        self, client: str | None, model: str | None = None, alert: str | None = None
    ) -> None:
        super().__init__()
        self.client = client
        self.model = model
        self.alert = alert


class ShowSamples(Message):
    """The Samples view, scoped to one client (and model); None: every sample."""

    def __init__(self, client: str | None, model: str | None = None) -> None:
        super().__init__()
        self.client = client
        self.model = model


class RememberSelection(Message):
    """What was highlighted (client, model, alertname), for the Runbooks view to prefill;
    values that are None or empty leave the remembered one as it is."""

    def __init__(self, **selected: str | None) -> None:
        super().__init__()
        self.selected = selected


class RunFinished(Message):
    """A runbook ran from the dialog: the views should show what it changed."""

    def __init__(self, runbook: str, status: str) -> None:
        super().__init__()
        self.runbook = runbook
        self.status = status
