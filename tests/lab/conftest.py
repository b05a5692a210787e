"""An isolated lab per test (own run dir, own free ports) for tests that stop services, so the
session lab other tests rely on is never touched."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import LabHandle, cli_env, free_port, lab_config, unavailable, write_config

from console.config import load_settings
from console.lab import services, specs

ISOLATED_SERVICES = ("redis", "alertmanager", "prometheus")


@pytest.fixture
def iso_lab(tmp_path: Path) -> Iterator[LabHandle]:
    """Config for a private lab (MLflow's port is reserved but it is never started here).
    Everything it started is stopped afterwards."""
    missing = [
        b for n, b in specs.BINARIES.items() if n in ISOLATED_SERVICES and shutil.which(b) is None
    ]
    if missing:
        unavailable(f"not installed: {', '.join(missing)}")
    run_dir = tmp_path / "run"
    ports = {name: free_port() for name in ("redis", "mlflow", "alertmanager", "prometheus")}
    config_path = run_dir / "config.toml"
    write_config(config_path, lab_config(run_dir, ports, services=ISOLATED_SERVICES))
    settings = load_settings(config_path)
    yield LabHandle(
        settings=settings, config_path=config_path, run_dir=run_dir, env=cli_env(config_path)
    )
    services.down(settings)
