"""End to end without the gateway: a real exporter scraped by the launcher's query engine (a
file_sd target), the shipped rules, the launcher's Alertmanager. The extraction alert must reach
Alertmanager within the bound the rules and intervals allow, for the attacker only: through
Prometheus, and through VictoriaMetrics + vmalert (``lab up --metrics victoria-metrics``)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest
from metrics_support import (
    EXTRACTION,
    RULES_DIR,
    active_alerts,
    alert_bound_s,
    alert_for_s,
    exporter_registered,
    metrics_lab,
    wait_for_alert,
    wait_for_result,
)
from support import REPO
from typer.testing import CliRunner

from console.adapters.prometheus import PrometheusClient, QueryResult
from console.cli.main import app
from console.lab import services

log = logging.getLogger(__name__)

ALERT = "AMLExtractionSuspected"
BOUND_S = alert_bound_s(ALERT)
VMALERT_LAG_S = 5.0  # vmalert reads what VictoriaMetrics has flushed (about a second) each 5 s


def test_extraction_alert_fires_in_alertmanager_for_the_attacker_only(tmp_path: Path) -> None:
    with metrics_lab(tmp_path / "run", ("alertmanager", "prometheus")) as lab:
        services.up(lab.settings, ["alertmanager", "prometheus"], rules_dir=RULES_DIR)
        am = lab.settings.alertmanager.url
        with exporter_registered(lab, EXTRACTION):
            start = time.monotonic()
            scraped = wait_for_result(
                lab.settings.prometheus.url,
                'aml_client_extraction_score{client="mallory-test"}',
                BOUND_S,
            )
            alert, _ = wait_for_alert(am, ALERT, "mallory-test", BOUND_S - scraped)
            took = time.monotonic() - start
            log.info(
                "%s in Alertmanager %.1f s after the target was registered, %.1f s after its "
                "first sample was stored",
                ALERT,
                took,
                took - scraped,
            )

            assert alert["labels"]["severity"] == "critical"
            assert alert["labels"]["model"] == "digits"
            assert alert["annotations"]["runbook"] == "contain-extraction"
            assert "mallory-test" in alert["annotations"]["summary"]
            assert alert["generatorURL"].startswith(lab.settings.prometheus.url)
            assert alert["status"]["state"] == "active"
            # Took at least `for:` (it was pending first), at most the derived bound.
            assert alert_for_s(ALERT) <= took <= BOUND_S

            clients = {a["labels"].get("client") for a in active_alerts(am, ALERT)}
            assert clients == {"mallory-test"}
            # Not even pending for the others: alice (benign), carol (high score, too slow),
            # eve (evasion traffic, not extraction).
            states = asyncio.run(_alert_states(lab.settings.prometheus.url))
            assert states == {"mallory-test": "firing"}


async def _alert_states(url: str) -> dict[str, str]:
    async with PrometheusClient.connect(url, 5.0) as prom:
        result = await prom.query(f'ALERTS{{alertname="{ALERT}"}}')
        groups = await prom.query("count by (rule_group) (prometheus_rule_group_rules)")
    assert {s.metric["rule_group"].rsplit(";", 1)[-1] for s in groups.samples} == {
        "aml-sli",
        "aml-clients-bounded",
        "aml-baselines",
        "aml-alerts",
    }
    return {s.metric["client"]: s.metric["alertstate"] for s in result.samples}


def test_lab_up_with_victoria_metrics_alerts_through_vmalert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the default rules dir, configs/prometheus, is relative
    with metrics_lab(tmp_path / "run", ("alertmanager", "prometheus")) as lab:
        result = CliRunner().invoke(
            app,
            ["--config", str(lab.config_path), "lab", "up", "--metrics", "victoria-metrics"]
            + ["-o", "json"],
        )
        assert result.exit_code == 0, result.stderr
        rows = {row["name"]: row for row in json.loads(result.stdout)["services"]}
        assert set(rows) == {"alertmanager", "victoria-metrics", "vmalert"}
        assert {row["state"] for row in rows.values()} == {"running"}
        [prometheus] = services.status(lab.settings, ["prometheus"])
        assert prometheus.state == "stopped"

        vm = lab.settings.victoria_metrics
        with exporter_registered(lab, EXTRACTION):
            alert, took = wait_for_alert(
                lab.settings.alertmanager.url,
                ALERT,
                "mallory-test",
                BOUND_S + VMALERT_LAG_S,
            )
            log.info(
                "%s in Alertmanager (vmalert) %.1f s after the target was registered", ALERT, took
            )
            assert alert["generatorURL"].startswith(vm.vmalert_url)  # from vmalert
            assert alert["labels"]["severity"] == "critical"
            assert alert["annotations"]["runbook"] == "contain-extraction"
            clients = {
                a["labels"].get("client")
                for a in active_alerts(lab.settings.alertmanager.url, ALERT)
            }
            assert clients == {"mallory-test"}
            # vmalert wrote the recording rules' results back into VictoriaMetrics.
            wait_for_result(vm.url, 'aml:client_requests:rate1m{client="mallory-test"}', 15)
            rate = asyncio.run(_query(vm.url, 'aml:client_requests:rate1m{client="mallory-test"}'))
            assert rate.samples[0].value == pytest.approx(20.0, rel=0.01)
            assert "alertgroup" not in rate.samples[0].metric  # same labels as with Prometheus


async def _query(url: str, expr: str, at: float | None = None) -> QueryResult:
    async with PrometheusClient.connect(url, 5.0) as client:
        return await client.query(expr, at)
