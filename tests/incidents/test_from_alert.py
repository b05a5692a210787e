"""`incident open --from-alert`: client, model and severity come from the firing alert in the
session lab's Alertmanager; two alerts of that name need a --client to choose."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from incident_support import cli, console_env, use_console
from support import LabHandle

from console.incidents.from_alert import kind_of_alert
from console.incidents.store import IncidentStore


def _post(lab: LabHandle, alerts: list[dict[str, Any]]) -> None:
    httpx.post(
        f"{lab.settings.alertmanager.url}/api/v2/alerts", json=alerts, timeout=10, trust_env=False
    ).raise_for_status()


def test_open_from_a_firing_alert(
    lab: LabHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = console_env(tmp_path, CONSOLE_ALERTMANAGER__URL=lab.settings.alertmanager.url)
    settings = use_console(monkeypatch, tmp_path, env)
    name = f"IncidentTest{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    ends = (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _post(
        lab,
        [
            {
                "labels": {
                    "alertname": name,
                    "client": f"mallory-{n}",
                    "model": "digits",
                    "severity": "critical",
                },
                "annotations": {"summary": f"{name} on mallory-{n}"},
                "endsAt": ends,
            }
            for n in (1, 2)
        ],
    )
    ambiguous = cli("incident", "open", "--from-alert", name)
    assert ambiguous.exit_code == 1 and "name one with --client" in ambiguous.stderr
    missing = cli("incident", "open", "--from-alert", f"{name}Nope")
    assert missing.exit_code == 1 and "is firing" in missing.stderr

    opened = cli(
        "incident", "open", "-o", "json", "--from-alert", name, "--client", "mallory-2",
        "--kind", "extraction",
    )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    data = json.loads(opened.stdout)
    assert (data["client"], data["model"], data["severity"]) == ("mallory-2", "digits", "critical")
    assert (data["source"], data["alert"], data["attack_kind"]) == ("alert", name, "extraction")
    assert data["title"] == f"{name} on mallory-2"
    stored = IncidentStore(settings).get(data["id"])
    assert stored.source == "alert" and stored.opened_by == "alice"


def test_the_shipped_alerts_name_their_attack_kind() -> None:
    assert kind_of_alert("AMLExtractionSuspected") == "extraction"
    assert kind_of_alert("AMLEvasionFlagRateSpike") == "evasion"
    assert kind_of_alert("AMLConfidenceShift") == "poisoning"
    assert kind_of_alert("SomethingElse") == "unknown"
