"""The adapters against the session lab's real services (the ``lab`` fixture of
``tests/conftest.py``: Redis, MLflow and Alertmanager on the test ports)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support import LabHandle

from console.adapters.mlflow import MlflowRegistry


@pytest.fixture
async def registry(lab: LabHandle) -> AsyncIterator[MlflowRegistry]:
    """A registry client on the session lab's MLflow, closed after the test."""
    client = MlflowRegistry.connect(lab.settings.mlflow.url, 10.0)
    yield client
    await client.aclose()
