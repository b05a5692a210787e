"""The Fleet view (key f) and the Models view's robustness column, driven with Pilot on real
services: records on real registry versions, incident and drill files, the real policy store
and Prometheus; a source down shows its own error badge while the rest stays on screen; the
refused traffic of a real gateway priced at ``[robustness] cost_per_request``."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from fleet_support import (
    EARLIER,
    evaluations,
    failing_path,
    fleet_env,
    forge_run,
    open_incidents,
    put_record,
    record,
    settings_of,
    write_drills,
)
from lab_stack import LabStack
from support import LabHandle, free_port
from textual.widgets import Static
from tui_support import cells, make_app, until

from console.adapters.backends import Backends
from console.lab.seed import SeededModel


def _text(app: object, widget_id: str) -> str:
    return str(app.screen.query_one(widget_id, Static).render())  # type: ignore[attr-defined]


async def test_fleet_view_shows_each_served_model_and_the_models_view_its_versions(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    settings = settings_of(fleet_env(lab_prometheus, tmp_path, seeded_model.name))
    early = record(seeded_model, "1", fgsm=0.55, at=EARLIER)
    await asyncio.to_thread(put_record, settings, seeded_model, early)
    await asyncio.to_thread(
        put_record, settings, seeded_model, record(seeded_model, "2", fgsm=0.71)
    )
    open_incidents(settings, seeded_model.name)
    write_drills(settings, seeded_model.name)
    app = make_app(settings, start="models")
    async with app.run_test(size=(200, 45)) as pilot:
        await pilot.press("f")  # the Fleet view's key, from any view
        await until(pilot, lambda: app.screen.name == "fleet", 5, "the fleet view")
        await until(pilot, lambda: len(cells(app, "#fleet-table")) == 1, 30, "its row")
        (row,) = cells(app, "#fleet-table")
        assert row[0] == seeded_model.name and row[1] == "2"
        assert row[2] == "MISS"  # 0.71 > the gate's 0.6
        assert row[3] == "clean 0.95  adv 0.71  FPR 0.03"
        gate = " ".join(_text(app, "#fleet-gate").split())
        assert f"{seeded_model.name}: misses the gate (fgsm adversarial_success_rate 0.710" in gate
        assert row[4].endswith("0.55 → 0.71")  # worse than the version before it
        assert row[5].split() == ["1", "critical", "1", "warning"]
        assert row[6] == "3" and row[7] == "2 (1 not contained)"
        sources = _text(app, "#fleet-sources")
        assert sources.count("● live") == 6, sources
        assert "0 block(s)" in _text(app, "#fleet-in-force")

        await pilot.press("3")
        await until(pilot, lambda: app.screen.name == "models", 5, "the models view")
        await until(pilot, lambda: len(cells(app, "#versions-table")) == 2, 30, "the versions")
        shown = {r[1]: r for r in cells(app, "#versions-table")}
        assert shown["2"][3] == "MISS fgsm"  # the gate column names what it misses on
        assert shown["2"][4].startswith("clean 0.95  adv 0.71")
        assert shown["1"][3] == "PASS"


async def test_a_source_down_shows_its_badge_and_the_rest_stays(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    env = fleet_env(lab_prometheus, tmp_path, seeded_model.name)
    settings = settings_of(env)
    open_incidents(settings, seeded_model.name)
    down = settings_of({**env, "CONSOLE_MLFLOW__URL": f"http://127.0.0.1:{free_port()}"})
    app = make_app(down, start="fleet")
    async with app.run_test(size=(200, 45)) as pilot:
        fleet = app.view("fleet")
        await until(pilot, lambda: fleet.refreshes >= 1, 30, "a refresh")
        sources = _text(app, "#fleet-sources")
        assert "registry ✖ ERROR" in sources and "evaluations ✖ ERROR" in sources, sources
        assert sources.count("● live") == 4, sources
        (row,) = cells(app, "#fleet-table")
        assert row[1] == "?" and row[3] == "no served version"
        assert row[5].split() == ["1", "critical", "1", "warning"]
        assert fleet.badge.panel.state == "live"  # the view itself did not fail
        # The highlighted model is what the runbooks get prefilled with.
        await until(pilot, lambda: app.selection.get("model") == seeded_model.name, 5, "chosen")


async def test_the_trend_charts_each_evaluation_and_keeps_it_while_the_runs_fail(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    env = fleet_env(lab_prometheus, tmp_path, seeded_model.name)
    settings = settings_of(env)
    await asyncio.to_thread(
        evaluations, settings, seeded_model, [("1", 0.7), ("2", 0.5), ("2", 0.3)]
    )
    await asyncio.to_thread(forge_run, settings, seeded_model.name, "2", "0" * 64, 0.01)
    failing = threading.Event()
    with failing_path(settings.mlflow.url, "/runs/search", failing) as proxy:
        app = make_app(settings_of({**env, "CONSOLE_MLFLOW__URL": proxy}), start="fleet")
        async with app.run_test(size=(200, 45)) as pilot:
            fleet = app.view("fleet")
            await until(pilot, lambda: len(cells(app, "#fleet-table")) == 1, 30, "its row")
            (row,) = cells(app, "#fleet-table")
            assert row[2] == "PASS"
            spark, tail = row[4].split(" ", 1)
            assert len(spark) == 3 and tail == "0.50 → 0.30"  # a bar for each evaluation
            trend = " ".join(_text(app, "#fleet-trend").split())
            assert trend == (
                f"trend {seeded_model.name}: 3 evaluation(s) (2 signed record(s), 1 run "
                "metric(s) of trusted artifacts); 1 run(s) left out (no trusted record of "
                "their artifact)"
            )
            assert _text(app, "#fleet-sources").count("● live") == 6

            failing.set()
            before = fleet.refreshes
            await pilot.press("r")
            await until(pilot, lambda: fleet.refreshes > before, 30, "a refresh")
            await until(
                pilot,
                lambda: "evaluations ◌ STALE" in _text(app, "#fleet-sources"),
                30,
                "the runs' badge",
            )
            # The trend read from the runs stays on screen, as the last good figures.
            (row,) = cells(app, "#fleet-table")
            assert row[4].endswith("0.50 → 0.30")
            assert "3 evaluation(s)" in _text(app, "#fleet-trend")
            assert _text(app, "#fleet-sources").count("● live") == 5
            assert fleet.badge.panel.state == "live"


async def test_refused_traffic_is_priced(tui_stack: LabStack) -> None:
    """A blocked client's requests to the stack's real gateway, counted by its Prometheus."""
    client = f"fleet-refused-{uuid.uuid4().hex[:6]}"
    settings = tui_stack.settings.model_copy(
        update={
            "robustness": tui_stack.settings.robustness.model_copy(
                update={"cost_per_request": 0.5, "cost_unit": "EUR"}
            )
        }
    )
    backends = Backends(settings)
    await backends.policy.block(client, timedelta(minutes=10), "fleet test", "t", "r-fleet")
    body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}
    statuses: list[int] = []

    async def send() -> None:
        """Refused requests the whole test long: increase() counts what comes after a series'
        first scrape."""
        async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
            while True:
                response = await http.post(
                    f"{settings.gateway.url}/v2/models/{tui_stack.model}/infer",
                    content=json.dumps(body),
                    headers={"X-Client-Id": client},
                )
                statuses.append(response.status_code)
                await asyncio.sleep(0.1)

    sender = asyncio.create_task(send())
    app = make_app(settings, start="fleet")
    async with app.run_test(size=(200, 45)) as pilot:

        def refused() -> float:
            rows = cells(app, "#fleet-table")
            text = rows[0][9].replace(",", "") if rows else "–"
            return float(text) if text not in ("–", "") else 0.0

        await until(pilot, lambda: refused() >= 10, 60, "the refusals counted")
        (row,) = cells(app, "#fleet-table")
        fleet = app.view("fleet").snapshot
        assert fleet is not None
        cost = fleet.cost[tui_stack.model]
        expected = ((cost.refused or 0) + (cost.flagged or 0)) * 0.5
        assert row[11] == f"{expected:,.2f} EUR"
        assert "1 block(s)" in _text(app, "#fleet-in-force")
    sender.cancel()
    await backends.policy.unblock(client)
    await backends.aclose()
    assert 403 in statuses
