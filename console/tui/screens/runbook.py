"""A runbook from the TUI: parameters prefilled from the selection, the plan read from the real
systems as a table (one row a step: what changes, before and after), a confirmation modal, and
each step's status as it runs. The same engine as `runbook run`, so the audit records are the
same."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, RichLog, Static

from console.errors import ConsoleError
from console.tui.messages import RunFinished
from console.tui.screens import runbook_approval as approval
from console.tui.screens.dialogs import ConfirmActionModal
from console.tui.text import plain, printable

if TYPE_CHECKING:
    from console.adapters.approval_store import ApprovalRecord
    from console.config import Settings
    from console.runbooks.approvals import ApprovalRequirement
    from console.runbooks.engine import RunbookEngine, RunEvent
    from console.runbooks.loader import LoadedRunbook
    from console.runbooks.planning import RunPlan
    from console.runbooks.state import RunState


class RunbookScreen(ModalScreen[str | None]):
    """Returns the run's final status (None if nothing was applied). A plan that needs
    approval is applied after another operator approves it: the dialog waits (in its worker)
    and can be closed meanwhile, leaving the request pending for `runbook resume`."""

    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("escape", "close", "Close"),
        Binding("p", "plan", "Plan", show=True),
        Binding("y", "apply", "Apply", show=True),
    ]

    def __init__(self, settings: Settings, loaded: LoadedRunbook, params: dict[str, str]) -> None:
        super().__init__()
        self.settings = settings
        self.loaded = loaded
        self.given = params
        self.plan: RunPlan | None = None
        self.state: RunState | None = None
        self.running = False
        self.need: ApprovalRequirement | None = None
        """Why the plan must be approved first (None: it needs no approval)."""
        self.waiting: ApprovalRecord | None = None
        """The request the dialog waits on, as last read."""

    @property
    def read_only(self) -> bool:
        return self.settings.read_only

    def compose(self) -> ComposeResult:
        rb = self.loaded.runbook
        with Vertical(classes="dialog", id="runbook-dialog"):
            yield Static(Text(f"runbook {printable(rb.name)}", style="bold underline"))
            yield Static(Text(printable(rb.description, 400), style="dim"))
            with VerticalScroll(id="params"):
                for name, spec in rb.parameters.items():
                    value = self.given.get(name)
                    if value is None and spec.default is not None:
                        value = str(spec.default)
                    with Horizontal(classes="param"):
                        mark = "*" if spec.required else " "
                        yield Label(f"{mark}{name} ({spec.type})", classes="param-name")
                        yield Input(
                            value=value or "",
                            password=spec.type == "secret",
                            id=f"param-{name}",
                            classes="param-input",
                        )
            if self.read_only:
                yield Static(
                    Text(
                        "read-only mode: the plan can be read, nothing can be applied",
                        style="bold black on yellow",
                    ),
                    id="read-only-note",
                )
            with Horizontal(id="runbook-buttons"):
                yield Button("Plan (p)", id="plan", variant="primary")
                yield Button("Apply (y)", id="apply", variant="error", disabled=True)
                yield Button("Close (esc)", id="close")
            yield Static("", id="result")
            plan_table: DataTable[Text] = DataTable(id="plan-table", cursor_type="row")
            plan_table.add_column("#")
            plan_table.add_column("step")
            plan_table.add_column("status", key="status")  # first: visible without scrolling
            plan_table.add_columns("action", "change", "before", "after")
            yield plan_table
            yield RichLog(id="runbook-log", wrap=True, markup=False, highlight=False)

    def on_mount(self) -> None:
        # Focus on the buttons, not a parameter: p and y would be typed into an input.
        self.query_one("#plan", Button).focus()

    @property
    def log_view(self) -> RichLog:
        return self.query_one("#runbook-log", RichLog)

    def _params(self) -> dict[str, str]:
        values = {}
        for name in self.loaded.runbook.parameters:
            value = self.query_one(f"#param-{name}", Input).value.strip()
            if value:
                values[name] = value
        return values

    @on(Button.Pressed, "#plan")
    def action_plan(self) -> None:
        if not self.running and self.waiting is None:  # a plan would end the wait
            self._plan()

    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        if self.read_only:
            self.notify("read-only mode: actions are disabled", severity="warning")
            return
        if self.waiting is not None:
            self.notify("waiting for approval: esc leaves it pending", severity="warning")
            return
        if self.plan is None or self.running or self.state is not None:
            self.notify("plan first (p), then apply (y)", severity="warning")
            return
        plan = self.plan
        if plan.to_dict()["params"] != _public(self.loaded, self._params()):
            self.notify("the parameters changed since the plan: plan again (p)", severity="warning")
            return

        def confirmed(yes: bool | None) -> None:
            if yes and self.plan is plan:
                self._apply(plan)
            elif not yes:
                self.log_view.write(
                    Text("not applied: cancelled at the confirmation", style="yellow")
                )

        self.app.push_screen(ConfirmActionModal.for_plan(plan), confirmed)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        if self.running:
            self.notify("the run is in progress; it cannot be left half-done", severity="warning")
            return
        self._leave_pending()
        self.dismiss(self.state.status if self.state else None)

    def on_unmount(self) -> None:
        self._leave_pending()  # closed another way (:ctx) while waiting

    def _leave_pending(self) -> None:
        if self.waiting is not None:
            record, self.waiting = self.waiting, None
            self.app.notify(approval.left_pending(record), timeout=20, markup=False)

    @work(exclusive=True, group="runbook", exit_on_error=False)
    async def _plan(self) -> None:
        from console.runbooks.engine import RunbookEngine

        self.query_one("#apply", Button).disabled = True
        self.log_view.write(Text("planning from the real state…", style="dim"))
        engine = RunbookEngine(self.settings)
        try:
            plan = await engine.plan(self.loaded, self._params())
        except ConsoleError as exc:
            self.plan = None
            self.plan_table.clear()
            self.log_view.write(Text("cannot plan: " + printable(exc, 800), style="bold red"))
            return
        self.plan, self.need = plan, engine.approval_for(plan)
        self._write_plan(plan)
        self.query_one("#apply", Button).disabled = self.read_only

    @property
    def plan_table(self) -> DataTable[Text]:
        return self.query_one("#plan-table", DataTable)

    def _write_plan(self, plan: RunPlan) -> None:
        table = self.plan_table
        table.clear()
        log = self.log_view
        log.write(Text(f"plan {plan.run_id} on {printable(plan.target)}", style="bold"))
        for i, step in enumerate(plan.steps, 1):
            d = step.to_dict()
            table.add_row(
                Text(str(i)),
                plain(d["id"], "bold"),
                _status("noop" if d["noop"] else "planned"),
                plain(d["action"]),
                plain(d["summary"], limit=200),
                plain(_short(d["before"]), "dim", limit=80),
                plain(_short(d["after"]), limit=80),
                key=d["id"],
            )
            for request in d["requests"]:
                log.write(
                    Text(
                        f" {i}. {printable(d['id'])} request: {printable(request, 300)}",
                        style="cyan",
                    )
                )
        if self.need is not None:
            log.write(approval.required_line(self.need))
            self.query_one("#result", Static).update(approval.required_line(self.need))
        if self.read_only:
            log.write(Text("read-only mode: this plan cannot be applied", style="yellow"))
        else:
            log.write(approval.apply_hint(self.need))

    def _set_status(self, step: str | None, status: str) -> None:
        table = self.plan_table
        if step is None or step not in table.rows:
            return
        table.update_cell(step, "status", _status(status))

    @work(exclusive=True, group="runbook", exit_on_error=False)
    async def _apply(self, plan: RunPlan) -> None:
        from console.runbooks.engine import RunbookEngine

        engine = RunbookEngine(self.settings)
        self.query_one("#apply", Button).disabled = True
        self.query_one("#plan", Button).disabled = True
        if self.need is not None and not await self._approved(engine, plan, self.need):
            self.query_one("#plan", Button).disabled = False
            return
        self.running = True
        try:
            self.state = await engine.run(plan, confirmed=True, on_event=self._event)
        except ConsoleError as exc:
            self.log_view.write(Text("refused: " + printable(exc, 800), style="bold red"))
            return
        finally:
            self.running = False
        status = self.state.status
        style = "bold green" if status == "succeeded" else "bold red"
        result = Text(f"run {plan.run_id}: {status}", style=style)
        for key, value in self.state.outputs.items():
            result.append(f"  {printable(key, 60)}={printable(value, 120)}", style="")
        if self.state.error:
            result.append("  " + printable(self.state.error, 300), style="red")
        self.log_view.write(result)
        self.query_one("#result", Static).update(result)
        self.notify(
            f"{self.loaded.runbook.name}: {status}",
            severity="information" if status == "succeeded" else "error",
        )
        self.post_message(RunFinished(self.loaded.runbook.name, status))

    async def _approved(
        self, engine: RunbookEngine, plan: RunPlan, need: ApprovalRequirement
    ) -> bool:
        """Request approval of ``plan`` and wait for the decision; whether it was approved."""
        result = self.query_one("#result", Static)
        try:
            record = await engine.request_approval(plan, need)
        except ConsoleError as exc:
            self.log_view.write(Text("refused: " + printable(exc, 800), style="bold red"))
            return False
        self.waiting = record
        self.log_view.write(approval.requested_line(record))

        def show(current: ApprovalRecord | None = None) -> None:
            if current is not None and self.waiting is not None:
                self.waiting = current
            if self.waiting is not None:
                result.update(approval.waiting_line(self.waiting, self.app_now()))

        show()
        ticker = self.set_interval(1.0, show)
        try:
            record = await engine.wait_for_approval(record.run_id, show)
        except ConsoleError as exc:
            self.log_view.write(Text("stopped waiting: " + printable(exc, 800), style="bold red"))
            self.log_view.write(Text(approval.left_pending(record), style="yellow"))
            self.waiting = None
            return False
        finally:
            ticker.stop()
        self.waiting = None
        if record.status == "approved":
            self.log_view.write(approval.approved_line(record))
            result.update(approval.approved_line(record))
            return True
        outcome = approval.outcome_line(record)
        self.log_view.write(outcome)
        result.update(outcome)
        self.notify(outcome.plain, severity="error", markup=False)
        return False

    def app_now(self) -> datetime:
        """The app's clock when it has one (the console's; a harness freezes it)."""
        now = getattr(self.app, "now", None)
        return now() if callable(now) else datetime.now(UTC)

    def _event(self, event: RunEvent) -> None:
        log = self.log_view
        if event.kind == "step-started":
            self._set_status(event.step, "running")
            log.write(Text(f" → {printable(event.step)}: {printable(event.summary, 300)}"))
        elif event.kind == "step-finished":
            ok = event.status in ("applied", "noop")
            self._set_status(event.step, event.status or "?")
            text = Text(
                f"   {'ok' if ok else 'FAILED'} {printable(event.step)}",
                style="green" if ok else "bold red",
            )
            if event.error:
                text.append(": " + printable(event.error, 300))
            log.write(text)
        elif event.kind == "compensation-started":
            self._set_status(event.step, "undoing")
            log.write(Text(f" ← undo {printable(event.step)}", style="yellow"))
        elif event.kind == "compensation-finished":
            self._set_status(event.step, f"undo {event.status}")
            log.write(Text(f"   {printable(event.status)} {printable(event.step)}", style="yellow"))


STATUS_STYLE = {
    "planned": "dim",
    "noop": "dim",
    "running": "bold cyan",
    "applied": "bold green",
    "failed": "bold red",
    "undoing": "yellow",
}


def _status(status: str) -> Text:
    shown = {"noop": "no-op", "applied": "ok", "running": "running…"}.get(status, status)
    style = STATUS_STYLE.get(status, "yellow" if status.startswith("undo") else "red")
    return Text(shown, style=style)


def _short(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None) or "–"
    return str(value)


def _public(loaded: LoadedRunbook, given: dict[str, str]) -> dict[str, Any] | None:
    """The parameters as the plan records them, to tell whether the form changed since the
    plan; None if they do not resolve (the plan is then stale anyway)."""
    from console.runbooks.params import jsonable, public_params, resolve

    try:
        values = resolve(loaded.runbook, given)
    except ConsoleError:
        return None
    public: dict[str, Any] = jsonable(public_params(loaded.runbook, values))
    return public


def params_from_words(words: list[str]) -> dict[str, Any]:
    """``key=value`` words of the `:run` command."""
    params: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {word!r}")
        params[key] = value
    return params
