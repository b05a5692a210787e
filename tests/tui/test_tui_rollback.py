"""Roll back from Models and undo it from Mitigations, on the real MLflow registry, with the
same plan / confirm flow as every runbook; the audit log records both runs. The undo puts the
version rolled away from back to champion with promote-model, so the robustness gate judges it
(a signed passing record is written on it first, as ``aml-console eval`` would)."""

from __future__ import annotations

from typing import Any

from gate_records import write_gate_record
from lab_stack import LabStack
from tui_support import cells, make_app, until

from console.adapters.mlflow import MlflowRegistry
from console.lab.seed import SeededModel
from console.tui.app import ConsoleApp
from console.tui.screens.dialogs import ConfirmActionModal
from console.tui.screens.runbook import RunbookScreen


async def _champion(url: str, model: str) -> str | None:
    registry = MlflowRegistry.connect(url, 5.0)
    try:
        return await registry.get_alias(model, "champion")
    finally:
        await registry.aclose()


async def _plan_confirm_apply(pilot: Any, app: ConsoleApp) -> RunbookScreen:
    await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 10, "the runbook dialog")
    dialog = app.screen
    assert isinstance(dialog, RunbookScreen)
    await pilot.press("p")
    await until(pilot, lambda: dialog.plan is not None, 30, "a plan")
    await pilot.press("y")
    await until(pilot, lambda: isinstance(app.screen, ConfirmActionModal), 5, "confirmation")
    await pilot.press("y")
    await until(pilot, lambda: dialog.state is not None, 30, "the run")
    assert dialog.state is not None and dialog.state.status == "succeeded"
    await pilot.press("escape")
    return dialog


async def test_rollback_from_models_then_revert_from_mitigations(
    tui_stack: LabStack, seeded_model: SeededModel
) -> None:
    model, url = seeded_model.name, tui_stack.settings.mlflow.url
    settings = tui_stack.settings.model_copy(
        update={"models": tui_stack.settings.models.model_copy(update={"served": [model]})}
    )
    app = make_app(settings, start="models")
    async with app.run_test(size=(150, 45)) as pilot:
        await until(
            pilot,
            lambda: any(
                r[0] == model and "champion" in r[2] for r in cells(app, "#versions-table")
            ),
            30,
            "the registry",
        )
        assert await _champion(url, model) == "2"
        app.screen.query_one("#models-table").focus()
        await pilot.press("R")
        rollback = await _plan_confirm_apply(pilot, app)
        assert rollback.loaded.runbook.name == "rollback-model"
        assert await _champion(url, model) == "1"
        await until(
            pilot,
            lambda: any(r[1] == "1" and "champion" in r[2] for r in cells(app, "#versions-table")),
            30,
            "champion 1 shown",
        )
        await pilot.press("4")
        await until(
            pilot,
            lambda: (
                app.screen.name == "mitigations"
                and any(r[2] == f"model:{model}" for r in cells(app, "#registry-table"))
            ),
            15,
            "the rollback in Mitigations",
        )
        rows = cells(app, "#registry-table")
        table = app.screen.query_one("#registry-table")
        table.move_cursor(row=[r[2] for r in rows].index(f"model:{model}"))  # type: ignore[attr-defined]
        table.focus()
        await pilot.press("z")
        await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 10, "revert dialog")
        dialog = app.screen
        assert isinstance(dialog, RunbookScreen)
        assert dialog.loaded.runbook.name == "promote-model"
        assert dialog.query_one("#param-version").value == "2"  # type: ignore[attr-defined]
        await write_gate_record(settings, seeded_model, "2")
        await _plan_confirm_apply(pilot, app)
        assert await _champion(url, model) == "2"
        await pilot.press("5")
        await until(
            pilot,
            lambda: (
                app.screen.name == "audit"
                and {"rollback-model", "promote-model"}
                <= {r[3] for r in cells(app, "#audit-table")}
            ),
            15,
            "both runs in Audit",
        )
