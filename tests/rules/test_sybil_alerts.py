"""Throwaway client ids do not blind the extraction alert (issue: 200 made-up ids used to hold
every label slot for 10 minutes, and an extraction attack behind them was counted as `other`
and never paged). On the real stack: the launcher's Prometheus, Alertmanager, gateway and
benign traffic; the throwaway ids and the attack from outside, as an attacker sends them."""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from lab_stack import LabStack, lab_stack
from metrics_support import active_alerts, alert_bound_s, wait_for_alert, wait_for_result
from support import REPO, LabHandle

from console.detectors.extraction import ExtractionMonitor
from console.lab.seed import SeededModel

log = logging.getLogger(__name__)

ALERT = "AMLExtractionSuspected"
ATTACK_RATE = 30.0
PROMOTION_S = 10.0
"""A promoted client's new series needs two scrapes before its rate exists."""
BOUND_S = ExtractionMonitor().min_samples / ATTACK_RATE + alert_bound_s(ALERT) + PROMOTION_S


PAYLOAD = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}


def _throwaway_ids(url: str, model: str, count: int, prefix: str) -> None:
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:
        for i in range(count):
            answer = client.post(
                f"/v2/models/{model}/infer", json=PAYLOAD, headers={"X-Client-Id": f"{prefix}{i}"}
            )
            assert answer.status_code == 200, answer.text


@contextmanager
def _more_throwaway_ids(url: str, model: str, rate: float) -> Iterator[None]:
    """A new throwaway id every 1/rate seconds while the block runs (a sustained Sybil)."""
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:
            for i in itertools.count():
                if stop.wait(1 / rate):
                    return
                client.post(
                    f"/v2/models/{model}/infer",
                    json=PAYLOAD,
                    headers={"X-Client-Id": f"sybil-more-{i}"},
                )

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=15)


def _attack(stack: LabStack, attacker: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console",
            "lab",
            "attack",
            "extraction",
            "--client",
            attacker,
            "--model",
            stack.model,
            "--rate",
            f"{ATTACK_RATE:g}",
            "--duration",
            "90",
            "--budget",
            "900",
            "--output",
            "json",
        ],
        env=stack.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(attack: subprocess.Popen[str]) -> None:
    if attack.poll() is None:
        attack.kill()
    attack.communicate()


@pytest.fixture
def sybil_lab(lab: LabHandle, seeded_model: SeededModel, tmp_path: Path) -> Iterator[LabStack]:
    with lab_stack(lab, seeded_model.name, tmp_path / "run", clients=2) as stack:
        yield stack


@pytest.mark.timeout(300)
def test_throwaway_ids_holding_every_slot_do_not_hide_an_extraction_attack(
    sybil_lab: LabStack,
) -> None:
    """250 throwaway ids first (the 200 slots fill up), then the attack: it pages by its own
    name, and the throwaway ids page as a Sybil signal of their own."""
    settings, model = sybil_lab.settings, sybil_lab.model
    # Once the gateway is being scraped: a counter's first sample is no increase.
    wait_for_result(settings.prometheus.url, "aml_new_clients_total >= 2", 60)
    time.sleep(6)
    _throwaway_ids(settings.gateway.url, model, 250, "sybil-")
    state = httpx.get(f"{settings.gateway.url}/aml/clients", trust_env=False).json()
    assert state["label_slots"]["used"] == state["label_slots"]["capacity"] == 200
    attacker = "mallory-sybil"
    attack = _attack(sybil_lab, attacker)
    try:
        with _more_throwaway_ids(settings.gateway.url, model, 5.0):
            alert, took = wait_for_alert(settings.alertmanager.url, ALERT, attacker, BOUND_S)
            log.info("%s for %s %.1f s after the attack started", ALERT, attacker, took)
            assert alert["labels"]["model"] == model
            # The Sybil signals fire too (asked of Prometheus' own ALERTS: a burst passes).
            for name in ("AMLClientIdSurge", "AMLClientLabelSlotsExhausted"):
                _fired(settings.prometheus.url, name, 90)
    finally:
        _finish(attack)
    # No throwaway id alerted as an extraction: they sent one natural-looking request each.
    assert not [
        a
        for a in active_alerts(settings.alertmanager.url, ALERT)
        if a["labels"]["client"].startswith("sybil-")
    ]


@pytest.fixture
def crowded_lab(lab: LabHandle, seeded_model: SeededModel, tmp_path: Path) -> Iterator[LabStack]:
    """Two label slots, both to be held by clients riskier than the attacker."""
    extra = {"CONSOLE_GATEWAY__CLIENT_LABELS": "2"}
    with lab_stack(lab, seeded_model.name, tmp_path / "run", 1, extra) as stack:
        yield stack


@pytest.mark.timeout(300)
def test_detection_does_not_need_a_label_slot(crowded_lab: LabStack) -> None:
    """Both slots held by blocked clients (refused share near 1, riskier than any score the
    attack reaches): the attacker stays in `other`, and still pages by its own name through
    the gateway's riskiest-unlabelled export."""
    settings, model, env = crowded_lab.settings, crowded_lab.model, crowded_lab.env
    holders = ("refused-1", "refused-2")
    for holder in holders:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "console",
                "runbook",
                "run",
                "block-client",
                "-p",
                f"client={holder}",
                "-p",
                "ttl=30m",
                "-p",
                "reason=test",
                "--yes",
            ],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    payload = {
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]
    }
    with httpx.Client(base_url=settings.gateway.url, timeout=10, trust_env=False) as client:
        # The benign client holds one slot; the blocked ones take it and the other by risk.
        for _ in range(300):
            for holder in holders:
                client.post(
                    f"/v2/models/{model}/infer", json=payload, headers={"X-Client-Id": holder}
                )
        attacker = "mallory-crowded"
        attack = _attack(crowded_lab, attacker)
        try:
            alert, took = wait_for_alert(settings.alertmanager.url, ALERT, attacker, BOUND_S)
            log.info("%s for %s in `other` after %.1f s", ALERT, attacker, took)
            text = client.get("/metrics").text
            assert f'client="{attacker}"' not in _requests_lines(text), "it got a slot"
            unlabelled = [
                line
                for line in text.splitlines()
                if line.startswith("aml_unlabelled_extraction_score{")
            ]
            assert len(unlabelled) == 1 and f'client="{attacker}"' in unlabelled[0], unlabelled
            state = client.get("/aml/clients").json()
            assert attacker in [c["client"] for c in state["unlabelled"]]
            # The on-call finds it in the Clients view and acts on it from there.
            asyncio.run(_block_from_the_clients_view(crowded_lab, attacker))
        finally:
            _finish(attack)


async def _block_from_the_clients_view(stack: LabStack, attacker: str) -> None:
    from textual.widgets import DataTable, Input

    from console.adapters.backends import Backends
    from console.tui.app import ConsoleApp
    from console.tui.screens.runbook import RunbookScreen

    async def until(pilot: Any, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}"
            await pilot.pause(0.1)

    app = ConsoleApp(stack.settings, Backends(stack.settings), start="clients", refresh_s=0.5)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        await until(
            pilot,
            lambda: attacker in screen.query_one("#other-table", DataTable).rows,
            30,
            "the attacker listed as counted in other",
        )
        gateway_line = str(screen.query_one("#gateway-status").render())
        assert "2/2 label slots held" in gateway_line, gateway_line
        screen.query_one("#other-table", DataTable).focus()
        table = screen.query_one("#other-table", DataTable)
        table.move_cursor(row=table.get_row_index(attacker))
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 5, "the block dialog")
        assert app.screen.query_one("#param-client", Input).value == attacker


def _requests_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.startswith("aml_requests_total"))


def _fired(prometheus: str, alertname: str, timeout_s: float) -> None:
    expr = f'max_over_time(ALERTS{{alertname="{alertname}", alertstate="firing"}}[10m])'
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, trust_env=False)
        if answer.json()["data"]["result"]:
            return
        time.sleep(1)
    probes = [
        "sum(rate(aml_new_clients_total[1m])) * 60",
        "aml_client_label_slots_used",
        'sum(rate(aml_requests_total{client="other"}[1m]))',
        f'ALERTS{{alertname="{alertname}"}}',
    ]
    seen = {
        p: httpx.get(f"{prometheus}/api/v1/query", params={"query": p}, trust_env=False).json()[
            "data"
        ]["result"]
        for p in probes
    }
    raise AssertionError(f"{alertname} never fired within {timeout_s:g} s: {seen}")
