"""Session fixtures: the real lab services, started with the project's own launcher.

``lab`` starts Redis, MLflow and Alertmanager on test ports (see ``support.TEST_PORTS``) with run
dir ``.aml-test/``, shared by xdist workers (the launcher's flock makes ``up`` safe and
idempotent). Services are left running at the end of the session so the next run starts fast;
``.ci/run`` stops them, and locally ``aml-console --config .aml-test/config.toml lab down``.

A service that cannot start skips the tests that need it, except under ``CI=true``, where they
fail: CI never skips.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest
from metrics_support import RULES_DIR, force_flush, metrics_lab, wait_for_result
from support import (
    REPO,
    SESSION_SERVICES,
    TEST_PORTS,
    TEST_RUN_DIR,
    LabHandle,
    cli_env,
    lab_config,
    unavailable,
    write_config,
)

from console.config import load_settings
from console.errors import ConsoleError
from console.lab import services
from console.lab.seed import SeededModel, seed_model

_STATE_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """State the console keeps per user (the audit witnesses, under ``$XDG_STATE_HOME``) goes
    to a directory of this session's: a test run must not leave state in the home directory,
    nor meet an earlier run's witness of a log at a reused temporary path. Subprocesses
    inherit it."""
    config.stash[_STATE_HOME] = os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(
        prefix="aml-test-state-"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_STATE_HOME, ""), ignore_errors=True)


@contextmanager
def _without_console_env() -> Iterator[None]:
    """Hide CONSOLE_* overrides from a developer's shell: the test lab is only its config file
    (``env`` for subprocesses drops them too)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CONSOLE_")}
    try:
        yield
    finally:
        os.environ.update(saved)


def _start(handle: LabHandle, names: Sequence[str]) -> None:
    from console.lab import services

    try:
        services.up(handle.settings, names, rules_dir=REPO / "configs" / "prometheus")
    except ConsoleError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def lab() -> LabHandle:
    """Redis, MLflow (seeded with ``digits``) and Alertmanager, running on the test ports."""
    config_path = TEST_RUN_DIR / "config.toml"
    write_config(config_path, lab_config(TEST_RUN_DIR, TEST_PORTS, services=SESSION_SERVICES))
    env = cli_env(config_path)
    try:
        with _without_console_env():
            settings = load_settings(config_path)
    except ConsoleError as exc:
        pytest.fail(f"test lab config is invalid: {exc}", pytrace=False)
    handle = LabHandle(settings=settings, config_path=config_path, run_dir=TEST_RUN_DIR, env=env)
    _start(handle, SESSION_SERVICES)
    return handle


@pytest.fixture(scope="session")
def lab_prometheus(lab: LabHandle) -> LabHandle:
    """The session lab plus Prometheus (started on demand; about a second)."""
    _start(lab, ["prometheus"])
    return lab


@pytest.fixture
def seeded_model(lab: LabHandle) -> SeededModel:
    """A freshly registered ``digits-<hex>`` model (2 versions, champion -> 2, previous -> 1),
    so a test can move its aliases without disturbing any other test."""
    try:
        return seed_model(lab.settings.mlflow.url, f"digits-{uuid.uuid4().hex[:12]}")
    except ConsoleError as exc:
        unavailable(str(exc))


ENGINES = ("prometheus", "victoria-metrics")


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    """Prometheus and VictoriaMetrics, each scraping itself, once each has two samples of ``up``
    (VictoriaMetrics aligns a range query's end down to a multiple of its step, so a range
    query over a single fresh sample can come back empty)."""
    with metrics_lab(tmp_path_factory.mktemp("engines") / "run", ENGINES) as lab:
        try:
            services.up(lab.settings, ENGINES, rules_dir=RULES_DIR)
        except ConsoleError as exc:
            unavailable(str(exc))
        two_samples = "count_over_time(up[1m]) >= 2"
        wait_for_result(lab.settings.prometheus.url, two_samples, 20)
        vm = lab.settings.victoria_metrics.url
        wait_for_result(vm, two_samples, 20, before=lambda: force_flush(vm))
        yield lab


@pytest.fixture(params=ENGINES)
def engine_url(request: pytest.FixtureRequest, engines: LabHandle) -> str:
    """Each test runs against both engines."""
    if request.param == "prometheus":
        return engines.settings.prometheus.url
    url = engines.settings.victoria_metrics.url
    force_flush(url)
    return url
