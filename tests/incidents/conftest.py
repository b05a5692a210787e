"""Incident tests: the store and the CLI on a console of their own (run dir, audit log), and
postmortems of a manual incident and of a drill on a lab stack (helpers: incident_support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_stack import LabStack, lab_stack
from support import LabHandle

from console.lab.seed import SeededModel


@pytest.fixture
def stack(lab: LabHandle, seeded_model: SeededModel, tmp_path: Path) -> Iterator[LabStack]:
    """A lab stack of the test's own (Prometheus, Alertmanager, gateway, 2 clients)."""
    with lab_stack(lab, seeded_model.name, tmp_path / "run", clients=2) as running:
        yield running
