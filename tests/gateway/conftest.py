"""Gateways for the tests: one started by the real launcher (a uvicorn process), and in-process
ones (the ASGI app with its lifespan, through httpx.ASGITransport). Both use the session lab's
Redis and MLflow with their own key prefix, run dir, port and freshly seeded model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_limits import MAX_PENDING_BODIES, SLOW_BODY_TIMEOUT_S
from gateway_support import GatewayEnv, make_gateway_env
from support import unavailable

from console.errors import ConsoleError
from console.lab import services
from console.lab.gateway.app import create_app
from console.lab.seed import SeededModel, seed_model


@pytest.fixture(scope="module")
def module_model(lab: Any) -> SeededModel:
    try:
        return seed_model(lab.settings.mlflow.url, f"digits-{uuid.uuid4().hex[:12]}")
    except ConsoleError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="module")
def launched(
    lab: Any, module_model: SeededModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayEnv]:
    """A gateway process started by ``services.up(settings, ["gateway"])``; stopped after."""
    mp = pytest.MonkeyPatch()
    try:
        gw = make_gateway_env(
            lab,
            tmp_path_factory.mktemp("launched"),
            module_model.name,
            mp.setenv,
            body_timeout_s=SLOW_BODY_TIMEOUT_S,
            max_pending_bodies=MAX_PENDING_BODIES,
        )
        try:
            services.up(gw.settings, ["gateway"], seed=False)
        except ConsoleError as exc:
            pytest.fail(f"launcher could not start the gateway: {exc}", pytrace=False)
        try:
            yield gw
        finally:
            services.down(gw.settings, ["gateway"])
    finally:
        mp.undo()


@pytest.fixture
def http(launched: GatewayEnv) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=launched.url, timeout=10.0, trust_env=False) as client:
        yield client


class InProcess:
    """An in-process gateway: its env/settings, the app, and an async client."""

    def __init__(self, gw: GatewayEnv, app: Any, client: httpx.AsyncClient) -> None:
        self.gw = gw
        self.app = app
        self.client = client

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway


@pytest.fixture
async def start_in_process(
    lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Awaitable[InProcess]]]:
    """``await start(model, **gateway_settings)`` -> an InProcess gateway (lifespan running)."""
    stack: list[tuple[Any, httpx.AsyncClient]] = []

    async def start(model: str, **gateway: Any) -> InProcess:
        gw = make_gateway_env(
            lab, tmp_path / f"gw{len(stack)}", model, monkeypatch.setenv, **gateway
        )
        app = create_app(gw.settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        )
        stack.append((lifespan, client))
        return InProcess(gw, app, client)

    yield start
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
