"""The TUI tests' lab: Prometheus, Alertmanager, a gateway and its benign traffic of their own
(one stack per xdist worker), against the session lab's Redis and MLflow."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from lab_stack import LabStack, lab_stack
from support import unavailable

from console.errors import ConsoleError
from console.lab.seed import seed_model


@pytest.fixture(scope="session")
def tui_stack(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabStack]:
    try:
        model = seed_model(lab.settings.mlflow.url, f"digits-tui-{uuid.uuid4().hex[:10]}")
    except ConsoleError as exc:
        unavailable(str(exc))
    with lab_stack(lab, model.name, tmp_path_factory.mktemp("tui") / "run", clients=3) as stack:
        yield stack
