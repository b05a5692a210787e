"""The lab end to end, as a user drives it: the launcher starts Prometheus, Alertmanager, the
gateway and its benign traffic; ``lab attack extraction`` runs from the CLI; the extraction
alert reaches Alertmanager for the attacker only, within the bound the intervals allow; the
contain-extraction runbook, filled from the alert's labels, stops the attacker; the benign
clients never saw a refusal and never alerted."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lab_stack import LabStack, lab_stack
from metrics_support import alert_bound_s, wait_for_alert, wait_for_result
from support import REPO, LabHandle

from console.detectors.extraction import ExtractionMonitor
from console.lab.seed import SeededModel

log = logging.getLogger(__name__)

ALERT = "AMLExtractionSuspected"
ATTACKER = "mallory-e2e"
ATTACK_RATE = 30.0
BENIGN_CLIENTS = 4
# From the attacker's first answered query: the gateway needs min_samples distances before it
# scores a client, then the alert takes what alert_bound_s derives from the intervals.
BOUND_S = ExtractionMonitor().min_samples / ATTACK_RATE + alert_bound_s(ALERT)


@pytest.fixture
def full_lab(lab: LabHandle, seeded_model: SeededModel, tmp_path: Path) -> Iterator[LabStack]:
    """The session lab's Redis and MLflow; everything else of its own on free ports."""
    with lab_stack(lab, seeded_model.name, tmp_path / "run", BENIGN_CLIENTS) as stack:
        yield stack


def _gateway_answered(url: str, client: str) -> bool:
    text = httpx.get(f"{url}/metrics", timeout=5, trust_env=False).text
    pattern = re.compile(rf'^aml_requests_total{{.*client="{re.escape(client)}".*outcome="ok"')
    return any(pattern.match(line) for line in text.splitlines())


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5, trust_env=False)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


@pytest.mark.timeout(420)
def test_live_extraction_alerts_for_the_attacker_only_and_the_runbook_stops_it(
    full_lab: LabStack,
) -> None:
    settings, model = full_lab.settings, full_lab.model
    prometheus, alertmanager = settings.prometheus.url, settings.alertmanager.url
    # `lab up` started the benign clients: each is answered and scored before the attack.
    wait_for_result(
        prometheus,
        f'count(aml_client_extraction_score{{model="{model}"}}) >= {BENIGN_CLIENTS}',
        60,
    )
    attack = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console",
            "lab",
            "attack",
            "extraction",
            "--client",
            ATTACKER,
            "--model",
            model,
            "--rate",
            f"{ATTACK_RATE:g}",
            "--duration",
            "150",
            "--budget",
            "6000",
            "--give-up-after",
            "10",
            "--output",
            "json",
        ],
        env=full_lab.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _gateway_answered(settings.gateway.url, ATTACKER):
            assert attack.poll() is None, attack.communicate()
            assert time.monotonic() < deadline, "the attacker was never answered"
            time.sleep(0.2)
        alert, took = wait_for_alert(alertmanager, ALERT, ATTACKER, BOUND_S)
        log.info("%s in Alertmanager %.1f s after the attacker's first answer", ALERT, took)
        assert alert["labels"]["model"] == model
        assert alert["labels"]["severity"] == "critical"

        # The on-call response: the runbook the alert names, filled from its labels.
        assert alert["annotations"]["runbook"] == "contain-extraction"
        runbook = subprocess.run(
            [
                sys.executable,
                "-m",
                "console",
                "runbook",
                "run",
                "contain-extraction",
                "-p",
                f"client={alert['labels']['client']}",
                "-p",
                f"model={model}",
                "--yes",
                "--output",
                "json",
            ],
            env=full_lab.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert runbook.returncode == 0, runbook.stdout + runbook.stderr
        out, err = attack.communicate(timeout=90)
    finally:
        if attack.poll() is None:
            attack.kill()
            attack.communicate()
    assert attack.returncode == 0, err
    report = json.loads(out)
    assert report["run"]["stopped"] == "blocked", report["run"]  # gave up after 10 403s
    assert report["outcomes"]["blocked"] >= 10

    # No benign client alerted, not even pending, at any point of the run.
    others = f'ALERTS{{alertname="{ALERT}", client!="{ATTACKER}"}}'
    assert _query(prometheus, f"max_over_time({others}[15m])") == []
    # And none was refused: their own view (the traffic service's metrics) has only answers.
    wait_for_result(prometheus, 'sum(aml_lab_traffic_requests_total{outcome="ok"}) > 0', 15)
    refused = _query(prometheus, 'aml_lab_traffic_requests_total{outcome!="ok"}')
    assert refused == [], refused
