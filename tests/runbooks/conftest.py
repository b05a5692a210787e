"""Fixtures for the runbook tests (helpers live in runbook_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runbook_support import Console, make_console


@pytest.fixture
def console(lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Console:
    """An isolated console: own run dir, audit log and Redis key prefix; shared services."""
    return make_console(lab, tmp_path, monkeypatch)
