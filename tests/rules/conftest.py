"""Fixtures of the rule and query-engine tests. Each lab here is isolated (own run dir, free
ports) and stopped afterwards, so the session lab other tests share is never touched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from metrics_support import RULES_DIR, force_flush, metrics_lab, wait_for_result
from support import LabHandle, unavailable

from console.errors import ConsoleError
from console.lab import services

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
