"""Runbooks view and the runbook dialog on the real stack: the shipped runbooks listed (an
invalid one beside them, with why), parameters prefilled from the last selection, the plan as a
table, and a confirmation that can say no."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lab_stack import LabStack
from support import REPO
from textual.widgets import Button, Input, Static
from tui_support import cells, make_app, until

from console.adapters.backends import Backends
from console.tui.screens.dialogs import ConfirmActionModal
from console.tui.screens.runbook import RunbookScreen

SHIPPED = {p.stem for p in (REPO / "runbooks").glob("*.yaml")}


def _with_broken_runbook(stack: LabStack, tmp_path: Path) -> Path:
    folder = tmp_path / "runbooks"
    shutil.copytree(REPO / "runbooks", folder)
    (folder / "broken.yaml").write_text("name: broken\nsteps: [\n", encoding="utf-8")
    return folder


async def test_runbooks_view_lists_prefills_from_selection_and_confirm_can_say_no(
    tui_stack: LabStack, tmp_path: Path
) -> None:
    folder = _with_broken_runbook(tui_stack, tmp_path)
    settings = tui_stack.settings.model_copy(update={"runbook_dirs": [folder]})
    app = make_app(settings, start="clients")
    client = "bob"
    async with app.run_test(size=(160, 45)) as pilot:
        await until(
            pilot,
            lambda: any(r[1] == client for r in cells(app, "#clients-table")),
            60,
            "bob listed",
        )
        names = [r[1] for r in cells(app, "#clients-table")]
        table = app.screen.query_one("#clients-table")
        table.move_cursor(row=names.index(client))  # type: ignore[attr-defined]
        await pilot.pause(0.2)
        assert app.selection["client"] == client
        await pilot.press("7")
        await until(
            pilot,
            lambda: app.screen.name == "runbooks" and app.view("runbooks").snapshot is not None,
            10,
            "runbooks view",
        )
        rows = {r[0]: r for r in cells(app, "#runbooks-table")}
        assert set(rows) >= SHIPPED
        assert rows["broken"][1] == "INVALID"
        assert any("broken" in w for w in app.view("runbooks").badge.panel.warnings)
        names = [r[0] for r in cells(app, "#runbooks-table")]
        runbooks = app.screen.query_one("#runbooks-table")
        runbooks.move_cursor(row=names.index("broken"))  # type: ignore[attr-defined]
        await pilot.pause(0.1)
        assert "does not validate" in str(app.screen.query_one("#runbook-detail", Static).render())
        runbooks.move_cursor(row=names.index("lower-query-budget"))  # type: ignore[attr-defined]
        await pilot.pause(0.1)
        detail = str(app.screen.query_one("#runbook-detail", Static).render())
        assert f"← {client} (selected)" in detail
        runbooks.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 5, "the dialog")
        dialog = app.screen
        assert isinstance(dialog, RunbookScreen)
        assert dialog.query_one("#param-client", Input).value == client
        dialog.query_one("#param-qpm", Input).focus()
        await pilot.press("1", "0", "tab")  # typed as a person does; tab leaves the field
        dialog.query_one("#plan", Button).focus()
        await pilot.press("p")
        await until(pilot, lambda: dialog.plan is not None, 30, "a plan")
        plan_rows = cells(app, "#plan-table")
        assert [r[1] for r in plan_rows] == ["budget"]
        assert "qpm=10" in plan_rows[0][6]  # after
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ConfirmActionModal), 5, "confirm")
        await pilot.press("n")
        await until(pilot, lambda: app.screen is dialog, 5, "back to the dialog")
        assert dialog.state is None
        log = "\n".join(str(line.text) for line in dialog.query_one("#runbook-log").lines)  # type: ignore[attr-defined]
        assert "cancelled at the confirmation" in log
        # Enter on the focused Cancel button must not apply either.
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ConfirmActionModal), 5, "confirm")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is dialog, 5, "back to the dialog")
        assert dialog.state is None
    sources = Backends(settings)
    try:
        assert await sources.policy.get_budget(client) is None  # nothing was applied
    finally:
        await sources.aclose()
    audit = settings.audit_path
    if audit.exists():
        records = [json.loads(line) for line in audit.read_text().splitlines() if line]
        assert not any(
            r.get("target") == f"client:{client}" and r.get("runbook") == "lower-query-budget"
            for r in records
        )


CANARY = "s3cr3t+Canary/Token=42"


async def test_a_secret_parameter_never_reaches_the_screen(
    tui_stack: LabStack, tmp_path: Path
) -> None:
    """Typed into the dialog's password field, sent in a header and a query string: the plan,
    the log, the confirmation, the result and the Audit view show *** only."""
    from urllib.parse import quote, quote_plus

    folder = tmp_path / "secret-runbooks"
    folder.mkdir()
    am = tui_stack.settings.alertmanager.url
    (folder / "notify-with-token.yaml").write_text(
        f"""
name: notify-with-token
target: "client:{{{{ params.client }}}}"
parameters:
  client: {{type: string, required: true, pattern: '^[a-z0-9-]+$'}}
  token: {{type: secret, required: true}}
steps:
  - id: notify
    action: http.request
    with:
      method: GET
      url: "{am}/api/v2/status?t={{{{ params.token | url }}}}&c={{{{ params.client }}}}"
      headers:
        Authorization: "Bearer {{{{ params.token }}}}"
      expect_status: [200]
""",
        encoding="utf-8",
    )
    settings = tui_stack.settings.model_copy(update={"runbook_dirs": [folder]})
    app = make_app(settings, start="audit")
    forms = (CANARY, quote(CANARY, safe=""), quote_plus(CANARY), quote(CANARY))

    def screen_text() -> str:
        return app.export_screenshot()

    def assert_no_secret(where: str) -> None:
        shown = screen_text()
        for form in forms:
            assert form not in shown, f"the secret is on the screen ({where})"

    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("colon", *"run notify-with-token client=secret-test", "enter")
        await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 10, "the dialog")
        dialog = app.screen
        assert isinstance(dialog, RunbookScreen)
        dialog.query_one("#param-token", Input).focus()
        await pilot.press(*CANARY)
        assert dialog.query_one("#param-token", Input).value == CANARY
        assert_no_secret("typing it")
        dialog.query_one("#plan", Button).focus()
        await pilot.press("p")
        await until(pilot, lambda: dialog.plan is not None, 30, "a plan")
        assert_no_secret("the plan")
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ConfirmActionModal), 5, "confirm")
        assert_no_secret("the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: dialog.state is not None, 30, "the run")
        assert dialog.state is not None and dialog.state.status == "succeeded"
        log = "\n".join(str(line.text) for line in dialog.query_one("#runbook-log").lines)  # type: ignore[attr-defined]
        assert "***" in log and not any(form in log for form in forms)
        assert_no_secret("the result")
        await pilot.press("escape")
        await until(
            pilot,
            lambda: any(r[3] == "notify-with-token" for r in cells(app, "#audit-table")),
            15,
            "the run in Audit",
        )
        assert_no_secret("the Audit view")
