"""The policy store (Redis) and the registry (MLflow) stopped mid-session: each panel turns
STALE with the reason and keeps its last good data, the rest of the view stays live, keys are
still answered, and both recover by themselves when the service is back. A Redis and an MLflow
of this test's own, started by the launcher, so stopping them disturbs no other test."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from lab_stack import LabStack
from support import free_port, unavailable
from tui_support import cells, make_app, until

from console.adapters.policy import PolicyStore
from console.errors import ConsoleError
from console.lab import services
from console.lab.seed import seed_model

OWN = ["redis", "mlflow"]


@pytest.mark.timeout(420)
async def test_policy_store_and_registry_go_stale_and_recover(
    tui_stack: LabStack, tmp_path: Path
) -> None:
    base = tui_stack.settings
    own = base.model_copy(
        update={
            "run_dir": tmp_path / "own",
            "redis": base.redis.model_copy(update={"url": f"redis://127.0.0.1:{free_port()}/0"}),
            "mlflow": base.mlflow.model_copy(update={"url": f"http://127.0.0.1:{free_port()}"}),
        }
    )
    try:
        services.up(own, OWN, seed=False)
        model = seed_model(own.mlflow.url, f"digits-fault-{uuid.uuid4().hex[:8]}").name
    except ConsoleError as exc:
        services.down(own, OWN)
        unavailable(str(exc))
    settings = own.model_copy(update={"models": own.models.model_copy(update={"served": [model]})})
    client = aioredis.Redis.from_url(settings.redis.url)
    try:
        await PolicyStore(client, settings.redis.key_prefix).block(
            "alice", timedelta(minutes=30), "fault test", "tester", "r-fault"
        )
    finally:
        await client.aclose()
    app = make_app(settings, start="clients")
    try:
        async with app.run_test(size=(150, 45)) as pilot:
            clients = app.view("clients")

            def alice_policy() -> str:
                return next((r[-1] for r in cells(app, "#clients-table") if r[1] == "alice"), "")

            await until(pilot, lambda: alice_policy().startswith("BLOCKED"), 60, "alice blocked")
            services.down(settings, ["redis"])
            await until(pilot, lambda: clients.policy_panel.state == "stale", 30, "policy stale")
            assert "redis" in (clients.policy_panel.error or "").lower()
            assert alice_policy().startswith("BLOCKED")  # the last known block stays shown
            assert clients.badge.panel.state == "live"  # Prometheus still answers
            status = str(app.screen.query_one("#policy-status").render())
            assert "STALE" in status

            await pilot.press("3")
            await until(pilot, lambda: app.screen.name == "models", 5, "models view")
            models = app.view("models")
            await until(
                pilot,
                lambda: any(r[0] == model for r in cells(app, "#versions-table")),
                30,
                "versions from the registry",
            )
            services.down(settings, ["mlflow"])
            await until(pilot, lambda: models.registry_panel.state == "stale", 60, "registry stale")
            assert {r[1] for r in cells(app, "#versions-table") if r[0] == model} == {"1", "2"}
            assert "STALE" in str(app.screen.query_one("#registry-title").render())
            await pilot.press("2")  # input is still answered
            await until(pilot, lambda: app.screen.name == "clients", 5, "clients view")

            services.up(settings, OWN, seed=False)
            await until(pilot, lambda: clients.policy_panel.state == "live", 60, "policy back")
            await pilot.press("3")
            await until(pilot, lambda: models.registry_panel.state == "live", 120, "registry back")
    finally:
        services.down(settings, OWN)
