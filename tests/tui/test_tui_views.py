"""The TUI on a real stack (Prometheus, Alertmanager, gateway with benign traffic, Redis,
MLflow), driven with Textual's Pilot as a person would: keys, the command line, the filter,
the runbook dialog."""

from __future__ import annotations

import httpx
from lab_stack import RULES_DIR, LabStack
from textual.widgets import Button, RichLog, Static
from tui_support import cells, stack_app, until

from console.lab import services
from console.tui.screens.dialogs import ConfirmActionModal
from console.tui.screens.runbook import RunbookScreen

BENIGN = {"alice", "bob", "carol"}


def _clients(app: object) -> set[str]:
    rows = cells(app, "#clients-table")
    return {r[1] for r in rows if not r[1].startswith("… more")}  # type: ignore[arg-type]


async def test_clients_view_lists_the_benign_clients_with_scores(tui_stack: LabStack) -> None:
    app = stack_app(tui_stack, start="clients")
    async with app.run_test(size=(140, 40)) as pilot:

        def rates() -> dict[str, float]:
            rows = cells(app, "#clients-table")
            return {r[1]: float(r[3]) for r in rows if r[1] in BENIGN}

        # A client can be listed by its score before its first rate exists (two scrapes).
        await until(
            pilot, lambda: len([v for v in rates().values() if v > 0]) == len(BENIGN), 60, "rates"
        )
        rows = {r[1]: r for r in cells(app, "#clients-table")}
        for name in BENIGN:
            assert rows[name][0] == tui_stack.model
            assert "top" in rows[name][2]  # why it is listed
            assert float(rows[name][3]) > 0  # req/s
            assert 0.0 <= float(rows[name][5]) < 0.4  # extraction score, under the alert
        assert app.view("clients").badge.panel.state == "live"


async def test_block_client_flow_plan_confirm_mitigation_audit(tui_stack: LabStack) -> None:
    client = "carol"
    app = stack_app(tui_stack, start="clients")
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: client in _clients(app), 60, "carol listed")
        table = app.screen.query_one("#clients-table")
        names = [r[1] for r in cells(app, "#clients-table")]
        table.move_cursor(row=names.index(client))  # type: ignore[attr-defined]
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 10, "runbook dialog")
        dialog = app.screen
        assert isinstance(dialog, RunbookScreen)
        assert dialog.query_one("#param-client").value == client  # type: ignore[attr-defined]
        await pilot.press("p")
        await until(pilot, lambda: dialog.plan is not None, 30, "a plan")
        assert not dialog.query_one("#apply", Button).disabled
        assert [r[1] for r in cells(app, "#plan-table")] == ["block"]  # the plan, as a table
        assert cells(app, "#plan-table")[0][2] == "planned"
        await pilot.press("y")  # asks first
        await until(pilot, lambda: isinstance(app.screen, ConfirmActionModal), 5, "confirm")
        question = str(app.screen.query_one("#confirm-question", Static).render())
        assert "block-client" in question and f"client:{client}" in question
        await pilot.press("y")
        await until(pilot, lambda: dialog.state is not None, 30, "the run to finish")
        assert dialog.state is not None and dialog.state.status == "succeeded"
        assert app.screen is dialog
        assert cells(app, "#plan-table")[0][2] == "ok"  # the step's live status
        assert "succeeded" in str(dialog.query_one("#result", Static).render())
        run_id = dialog.state.run_id
        await pilot.press("escape")
        # The gateway refuses the client now (the real policy store, through pub/sub).
        response = httpx.post(
            f"{tui_stack.settings.gateway.url}/v2/models/{tui_stack.model}/infer",
            json={
                "inputs": [
                    {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}
                ]
            },
            headers={"X-Client-Id": client},
            timeout=5,
            trust_env=False,
        )
        assert response.status_code == 403
        await pilot.press("4")
        await until(pilot, lambda: app.screen.name == "mitigations", 5, "mitigations view")
        await until(
            pilot,
            lambda: any(r[0] == client for r in cells(app, "#blocks-table")),
            10,
            "the block in Mitigations",
        )
        await pilot.press("5")
        await until(
            pilot,
            lambda: (
                app.screen.name == "audit"
                and any(r[-1] == run_id for r in cells(app, "#audit-table"))
            ),
            10,
            "the run in Audit",
        )
        verify = str(app.screen.query_one("#verify", Static).render())
        assert "verified" in verify and "TAMPERED" not in verify
        kinds = [r[2] for r in cells(app, "#audit-table") if r[-1] == run_id]
        assert {"run-intent", "step-intent", "step-outcome", "run-outcome"} <= set(kinds)


async def test_command_line_filter_help_and_inspector(tui_stack: LabStack) -> None:
    app = stack_app(tui_stack, start="clients")
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: _clients(app) >= BENIGN, 60, "benign clients listed")
        await pilot.press("slash", *"alice", "enter")
        await until(pilot, lambda: _clients(app) == {"alice"}, 5, "only alice after /alice")
        await pilot.press("slash", "enter")  # an empty filter clears it
        await until(pilot, lambda: _clients(app) >= BENIGN, 5, "filter cleared")
        await pilot.press("i")
        shown = str(app.screen.query_one("#queries", Static).render())
        assert "aml:client_listed:rate1m" in shown
        await pilot.press("escape", "question_mark")
        assert "contain-extraction" in str(app.screen.query_one("#help-text", Static).render())
        await pilot.press("escape", "colon", *"models", "enter")
        await until(pilot, lambda: app.screen.name == "models", 5, ":models")
        await pilot.press("colon", *"nonsense", "enter")
        await pilot.pause(0.2)
        assert app.screen.name == "models"


async def test_models_view_shows_latency_and_registry(tui_stack: LabStack) -> None:
    app = stack_app(tui_stack, start="models")
    async with app.run_test(size=(140, 40)) as pilot:

        def ready() -> bool:
            rows = cells(app, "#models-table")
            return any(r[0] == tui_stack.model and r[2].endswith("ms") for r in rows)

        await until(pilot, ready, 90, "latency percentiles of the served model")
        versions = cells(app, "#versions-table")
        champion = [r for r in versions if "champion" in r[2]]
        assert [r[1] for r in champion] == ["2"] and any(r[1] == "1" for r in versions)


async def test_read_only_shows_a_banner_and_applies_nothing(tui_stack: LabStack) -> None:
    settings = tui_stack.settings.model_copy(update={"read_only": True})
    from tui_support import make_app

    app = make_app(settings, start="mitigations")
    async with app.run_test(size=(140, 40)) as pilot:
        assert "READ-ONLY" in str(app.screen.query_one("#topbar", Static).render())
        app.open_runbook("block-client", {"client": "ro-client", "reason": "read-only test"})
        await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 5, "dialog")
        dialog = app.screen
        assert isinstance(dialog, RunbookScreen)
        await pilot.press("p")
        await until(pilot, lambda: dialog.plan is not None, 30, "a plan in read-only mode")
        assert dialog.query_one("#apply", Button).disabled
        await pilot.press("y")
        await pilot.pause(0.3)
        assert dialog.state is None
        log = "\n".join(str(line.text) for line in dialog.query_one(RichLog).lines)
        assert "read-only mode" in log
    from console.adapters.backends import Backends

    sources = Backends(settings)
    try:
        assert await sources.policy.get_block("ro-client") is None
    finally:
        await sources.aclose()


async def test_a_stopped_prometheus_marks_the_view_stale_and_it_recovers(
    tui_stack: LabStack,
) -> None:
    settings = tui_stack.settings
    app = stack_app(tui_stack, start="clients")
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: _clients(app) >= BENIGN, 60, "benign clients listed")
        view = app.view("clients")
        try:
            services.down(settings, ["prometheus"])
            await until(pilot, lambda: view.badge.panel.state == "stale", 30, "a stale badge")
            assert "prometheus" in (view.badge.panel.error or "").lower()
            assert _clients(app) >= BENIGN  # the last good data stays on screen
            await pilot.press("5")  # input is still answered
            await until(pilot, lambda: app.screen.name == "audit", 5, "audit view")
            await pilot.press("2")
            assert "STALE" in str(view.badge.render())
        finally:
            services.up(settings, ["prometheus"], seed=False, rules_dir=RULES_DIR)
        await until(pilot, lambda: view.badge.panel.state == "live", 60, "recovery")


async def test_a_stopped_alertmanager_marks_alerts_stale_and_it_recovers(
    tui_stack: LabStack,
) -> None:
    settings = tui_stack.settings
    app = stack_app(tui_stack, start="alerts")
    async with app.run_test(size=(140, 40)) as pilot:
        view = app.view("alerts")
        await until(pilot, lambda: view.badge.panel.state in ("live", "empty"), 30, "alerts")
        try:
            services.down(settings, ["alertmanager"])
            await until(pilot, lambda: view.badge.panel.state == "stale", 30, "a stale badge")
            assert "alertmanager" in (view.badge.panel.error or "").lower()
        finally:
            services.up(settings, ["alertmanager"], seed=False)
        await until(pilot, lambda: view.badge.panel.state in ("live", "empty"), 30, "recovery")
