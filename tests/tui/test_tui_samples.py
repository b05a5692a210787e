"""Samples view: inputs the real gateway flagged, their provenance, the drawn input and the
span of their request; reached from an alert with enter."""

from __future__ import annotations

import json
import uuid

import httpx
import numpy as np
from lab_stack import LabStack
from textual.widgets import DataTable, Static
from tui_support import cells, stack_app, until

from console.adapters.alertmanager import AlertmanagerClient
from console.detectors.squeezing import FeatureSqueezer
from console.lab.gateway.models import make_session
from console.lab.seed import download_artifact
from console.tui.screens.replay import ReplayScreen
from console.tui.screens.runbook import RunbookScreen


def _flagged_rows(stack: LabStack, count: int) -> np.ndarray:
    """Uniform-noise rows the served model's detector flags (checked with the reference)."""
    onnx = download_artifact(stack.settings.mlflow.url, stack.model, "2")
    session, squeezer = make_session(onnx), FeatureSqueezer()
    noise = np.random.default_rng(11).uniform(0, 16, (400, 64)).astype(np.float32)
    probabilities = session.run(["probabilities"], {"input": squeezer.batch(noise)})[0]
    chosen = noise[squeezer.scores(probabilities, len(noise)) >= 0.5][:count]
    assert len(chosen) == count
    return chosen


async def test_alert_enter_opens_the_clients_samples_with_digit_and_trace(
    tui_stack: LabStack,
) -> None:
    client = f"sampler-{uuid.uuid4().hex[:6]}"
    trace_ids = []
    for row in _flagged_rows(tui_stack, 3):
        body = {
            "inputs": [
                {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row.tolist()}
            ]
        }
        response = httpx.post(
            f"{tui_stack.settings.gateway.url}/v2/models/{tui_stack.model}/infer",
            content=json.dumps(body),
            headers={"X-Client-Id": client},
            timeout=5,
            trust_env=False,
        )
        assert response.status_code == 200
        trace_ids.append(response.headers["x-trace-id"])
    am = AlertmanagerClient.connect(tui_stack.settings.alertmanager.url, 5.0)
    alertname = f"AMLSampled{uuid.uuid4().hex[:6]}"
    try:
        labels = {
            "alertname": alertname,
            "severity": "warning",
            "client": client,
            "model": tui_stack.model,
        }
        await am.post_alerts([{"labels": labels}])
    finally:
        await am.aclose()
    app = stack_app(tui_stack, start="alerts")
    async with app.run_test(size=(160, 45)) as pilot:
        await until(
            pilot,
            lambda: any(r[1] == alertname for r in cells(app, "#alerts-table")),
            30,
            "the alert",
        )
        names = [r[1] for r in cells(app, "#alerts-table")]
        table = app.screen.query_one("#alerts-table")
        table.move_cursor(row=names.index(alertname))  # type: ignore[attr-defined]
        table.focus()

        def correlated() -> str:
            return str(app.screen.query_one("#alert-correlated", Static).render())

        # Beside the alert: its client's spans and sampled inputs, newest first.
        await until(
            pilot,
            lambda: all(t[:16] in correlated() for t in trace_ids),
            20,
            "the client's spans beside the alert",
        )
        assert "3 newest, 3 flagged" in correlated()
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.name == "samples", 5, "samples view")

        def listed() -> set[str]:
            return {r[-1] for r in cells(app, "#samples-table") if r[1] == client}

        await until(pilot, lambda: len(listed()) == 3, 30, "the client's 3 flagged samples")
        assert listed() == {t[:16] for t in trace_ids}
        assert all(r[1] == client for r in cells(app, "#samples-table"))  # scoped to the client
        digit = str(app.screen.query_one("#sample-digit", Static).render())
        assert len(digit.splitlines()) == 8 and any(ch in digit for ch in "░▒▓█")

        def trace_shown() -> bool:
            shown = str(app.screen.query_one("#sample-trace", Static).render())
            return "aml.client = " + client in shown and "aml.flagged = True" in shown

        await until(pilot, trace_shown, 15, "the sample's span")

        # v: the same inputs replayed through champion and previous, side by side.
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, ReplayScreen), 5, "replay screen")
        replay = app.screen
        assert isinstance(replay, ReplayScreen)
        await until(
            pilot, lambda: replay.result is not None or replay.error is not None, 60, "the replay"
        )
        assert replay.error is None, replay.error
        assert replay.result is not None
        columns = replay.query_one("#replay-table", DataTable).columns.values()
        header = [str(c.label) for c in columns]
        assert "champion (2)" in header and "previous (1)" in header
        rows = cells(app, "#replay-table")
        assert len(rows) == 3 and all(r[1] == client for r in rows)
        # Each version's answer is what the version's own ONNX gives on the stored input.
        for outcome in replay.result.outcomes():
            assert outcome.served_prediction == outcome.predictions["2"]
        verdict = str(replay.query_one("#replay-verdict", Static).render())
        assert "3 samples, 3 flagged" in verdict
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 5, "rollback dialog")
        dialog = app.screen
        assert isinstance(dialog, RunbookScreen)
        assert dialog.loaded.runbook.name == "rollback-model"
        assert dialog.query_one("#param-model").value == tui_stack.model  # type: ignore[attr-defined]
        await pilot.press("escape")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen.name == "samples", 5, "back to samples")
