"""The adapters against the session lab's real services (the ``lab`` fixture of
``tests/conftest.py``: Redis, MLflow and Alertmanager on the test ports), the query engines
(``engine_url``, from ``tests/conftest.py``) and one run of the real gateway whose sample and
span files the reader tests read back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from readers_support import PARENT_SPAN, GatewayRun, drive_gateway, gateway_settings
from support import LabHandle, unavailable

from console.adapters.mlflow import MlflowRegistry
from console.errors import ConsoleError
from console.lab.seed import seed_model


@pytest.fixture
async def registry(lab: LabHandle) -> AsyncIterator[MlflowRegistry]:
    """A registry client on the session lab's MLflow, closed after the test."""
    client = MlflowRegistry.connect(lab.settings.mlflow.url, 10.0)
    yield client
    await client.aclose()


def _complete_lines(directory: Path, pattern: str) -> int:
    return sum(p.read_text().count("\n") for p in directory.glob(pattern))


@pytest.fixture(scope="session")
def gateway_run(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> GatewayRun:
    """Seven infer requests: five served (alice, bob, alice with two rows, carol continuing a
    traceparent, bob), one without a client id (400), one for an unknown model (404). Every
    served row is sampled (sample_fraction = 1)."""
    from sklearn.datasets import load_digits

    try:
        seeded = seed_model(lab.settings.mlflow.url, f"digits-{uuid.uuid4().hex[:12]}")
    except ConsoleError as exc:
        unavailable(str(exc))
    x, _ = load_digits(return_X_y=True)
    rows = [[float(v) for v in row] for row in x[-8:]]
    m = seeded.name
    plan: list[tuple[str | None, str, list[list[float]], str | None]] = [
        ("alice", m, [rows[0]], None),
        ("bob", m, [rows[1]], None),
        ("alice", m, [rows[2], rows[3]], None),
        ("carol", m, [rows[4]], PARENT_SPAN),
        ("bob", m, [rows[5]], None),
        (None, m, [rows[6]], None),
        ("alice", "no-such-model", [rows[7]], None),
    ]
    with pytest.MonkeyPatch.context() as mp:
        settings = gateway_settings(lab, tmp_path_factory.mktemp("readers-gw"), m, mp)
        run = GatewayRun(settings, m, seeded.champion)

        def flushed(r: GatewayRun) -> bool:
            served_rows = sum(len(s.rows) for s in r.ok())
            return _complete_lines(
                r.samples_dir, "dt=*/samples-*.jsonl"
            ) >= served_rows and _complete_lines(r.traces_dir, "traces-*.jsonl") >= len(r.sent)

        asyncio.run(drive_gateway(run, plan, flushed))
    assert [s.status for s in run.sent] == [200, 200, 200, 200, 200, 400, 404]
    assert flushed(run), "the gateway's writers did not flush within 30 s"
    return run
