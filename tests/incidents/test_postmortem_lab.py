"""A real (manual) incident's postmortem on a lab stack of its own (Prometheus, Alertmanager,
gateway, benign traffic; the session's Redis and MLflow): an attacker sends requests, an
operator opens an incident and blocks the client with the block-client runbook, and the
export names the run and its operator and computes the times from Prometheus and the audit
log."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from incident_support import stack_cli
from lab_stack import LabStack
from metrics_support import wait_for_result

from console.drills.attacks import run_attack


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


@pytest.mark.timeout(300)
def test_a_manual_incident_with_a_block_client_run(stack: LabStack) -> None:
    attacker = f"mallory-{secrets.token_hex(3)}"
    model = stack.model
    prometheus = stack.settings.prometheus.url
    args = {"rate": 10, "budget": 2000, "duration": 90, "seed": 2, "give_up_after": 20}
    attack = threading.Thread(
        target=lambda: asyncio.run(run_attack(stack.settings, "extraction", attacker, model, args)),
        daemon=True,
    )
    attack.start()
    opened = stack_cli(
        stack,
        "incident", "open", "-o", "json", "--client", attacker, "--model", model,
        "--kind", "extraction", "--severity", "critical", "--title", "scraping digits",
    )  # fmt: skip
    incident_id = json.loads(opened.stdout)["id"]
    wait_for_result(prometheus, f'aml_requests_total{{client="{attacker}",outcome="ok"}} > 0', 60)
    run = stack_cli(
        stack,
        "runbook", "run", "block-client", "-p", f"client={attacker}", "-p", "ttl=10m",
        "-p", "reason=incident test", "--yes", "--output", "json",
    )  # fmt: skip
    run_id = json.loads(run.stdout)["run"]["run_id"]
    stack_cli(stack, "incident", "note", incident_id, "blocked", attacker)
    blocked = f'aml_requests_total{{client="{attacker}",outcome="blocked"}} > 0'
    wait_for_result(prometheus, blocked, 60)
    time.sleep(12)  # two more scrapes: the answered counter is seen to have stopped
    stack_cli(stack, "incident", "close", incident_id, "--reason", "blocked")

    exported = stack_cli(stack, "incident", "export", incident_id, "--format", "json")
    path = Path(exported.stdout.strip())
    data = json.loads(path.read_text())
    timeline = data["timeline"]
    assert [_at(e) for e in timeline] == sorted(_at(e) for e in timeline)
    assert timeline[0]["kind"] == "opened" and timeline[-1]["kind"] == "closed"
    kinds = {e["kind"] for e in timeline}
    assert {"first-request", "run", "mitigation", "run-finished", "contained", "note"} <= kinds
    assert data["missing"] == [] and "error" not in kinds

    [ran] = [e for e in data["actions"] if e["kind"] == "run"]
    assert f"block-client run {run_id} on client:{attacker}" in ran["detail"]
    assert ran["operator"] == "stack-tester"
    [mitigation] = [e for e in timeline if e["kind"] == "mitigation"]
    assert "policy.block_client by stack-tester" in mitigation["detail"]
    assert mitigation["operator"] == "stack-tester"
    first = next(e for e in timeline if e["kind"] == "first-request")
    contained = next(e for e in timeline if e["kind"] == "contained")
    expected = round((_at(mitigation) - _at(first)).total_seconds(), 3)
    assert data["time_to_mitigate_s"] == expected > 0
    assert data["time_to_contain_s"] == round((_at(contained) - _at(first)).total_seconds(), 3)
    assert data["time_to_contain_s"] >= data["time_to_mitigate_s"]
    assert data["recurrence"] == "mallory-* extraction on digits: 1st incident this month".replace(
        "digits", model
    )
    assert data["chart"] == "postmortem.png" and (path.parent / "postmortem.png").stat().st_size

    md = stack_cli(stack, "incident", "export", incident_id, "--format", "md").stdout.strip()
    text = Path(md).read_text()
    assert "| first mitigation |" in text and f"{data['time_to_mitigate_s']:.3f} s" in text
    assert "stack\\-tester" not in text and "stack-tester" in text
    assert "block\\-client" not in text and f"run {run_id}" in text
    assert "![request rate with the alert and mitigation marked](postmortem.png)" in text
    html = stack_cli(stack, "incident", "export", incident_id, "--format", "html").stdout.strip()
    assert 'src="data:image/png;base64,' in Path(html).read_text()
