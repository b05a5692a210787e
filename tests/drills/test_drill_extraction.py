"""The extraction drill end to end, as CI and game days run it: `drill run extraction
--responder auto` on a lab stack of its own (Prometheus, Alertmanager, gateway, benign
traffic; the session's Redis and MLflow). The report must say the attacker was contained, with
time to detect and to mitigate inside bounds derived from the scrape and rule intervals, and no
benign client blocked, refused or alerted on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lab_stack import LabStack, lab_stack
from support import REPO, LabHandle, run_cli

from console.detectors.extraction import ExtractionMonitor
from console.durations import parse_duration
from console.lab import scrape
from console.lab.seed import SeededModel

RATE = 30.0  # configs/drills/extraction.yaml
POLL_S = 1.0  # the drill reads Alertmanager once a second
RESEND_S = 5.0  # Prometheus --rules.alert.resend-delay
MARGIN_S = 10.0


def _seconds(text: str) -> float:
    return parse_duration(text).total_seconds()


def _alert_for_s(alertname: str) -> float:
    for path in (REPO / "configs" / "prometheus").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alertname:
                    return _seconds(rule["for"])
    raise AssertionError(f"no rule {alertname}")


@pytest.fixture
def drill_lab(lab: LabHandle, seeded_model: SeededModel, tmp_path: Path) -> Iterator[LabStack]:
    with lab_stack(lab, seeded_model.name, tmp_path / "run", clients=4) as stack:
        yield stack


@pytest.mark.timeout(480)
def test_extraction_drill_with_the_scripted_responder(drill_lab: LabStack) -> None:
    result = run_cli(
        ["drill", "run", "extraction", "--responder", "auto", "--output", "json"],
        drill_lab.env,
        timeout=420,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    for key in (
        "contained",
        "time_to_detect_s",
        "time_to_mitigate_s",
        "attacker_queries_answered",
        "attacker_success",
        "benign_blocked",
        "benign_error_rate",
        "false_alerts",
    ):
        assert key in summary, key

    scrape_s, eval_s = _seconds(scrape.SCRAPE_INTERVAL), _seconds(scrape.EVALUATION_INTERVAL)
    floor = scrape_s + eval_s + _alert_for_s("AMLExtractionSuspected")
    assert summary["detection_floor_s"] == floor
    # From the attacker's first answered request: the statistic needs its first distances, a
    # rate needs a second scrape, `for:` is checked at evaluations, then Prometheus sends it
    # and the drill sees it at its next read of Alertmanager.
    detect_bound = (
        ExtractionMonitor().min_samples / RATE
        + floor
        + scrape_s
        + eval_s
        + RESEND_S
        + POLL_S
        + MARGIN_S
    )
    assert summary["contained"] is True
    assert 0 < summary["time_to_detect_s"] <= detect_bound, summary
    # The responder acts on the alert at once: evidence, budget, then the block.
    assert summary["time_to_detect_s"] <= summary["time_to_mitigate_s"]
    assert summary["time_to_mitigate_s"] - summary["time_to_detect_s"] <= 2 * POLL_S + 10
    assert summary["time_to_contain_s"] <= summary["time_to_mitigate_s"] + 3 * POLL_S
    # What the attacker got: about RATE per second until containment, then nothing.
    assert (
        0
        < summary["attacker_queries_answered"]
        <= RATE * 1.3 * (summary["time_to_contain_s"] + POLL_S)
    )
    assert 0.0 <= summary["attacker_success"] <= 1.0
    assert summary["benign_blocked"] == 0
    assert summary["benign_error_rate"] == 0.0
    assert summary["false_alerts"] == 0

    folder = Path(summary["report_dir"])
    if not folder.is_absolute():
        folder = REPO / folder
    report = json.loads((folder / "report.json").read_text())
    kinds = [e["kind"] for e in report["timeline"]]
    for kind in (
        "drill-start",
        "first-request",
        "alert-firing",
        "response-started",
        "mitigation",
        "contained",
        "drill-end",
    ):
        assert kind in kinds, kinds
    times = [e["at_s"] for e in report["timeline"]]
    assert times == sorted(times)
    assert report["attack_reports"][0]["run"]["stopped"] == "blocked"
    audit = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
    steps = {r["action"] for r in audit if r["kind"] == "step-outcome" and r["result"] == "ok"}
    assert {"policy.block_client", "policy.set_budget"} <= steps
    assert all(r["target"] == f"client:{summary['attacker']}" for r in audit)
    assert (folder / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "series.csv").read_text().startswith("at_s,")

    history = run_cli(["drill", "history", "--output", "json"], drill_lab.env)
    assert history.returncode == 0, history.stderr
    rows = {r["id"]: r for r in json.loads(history.stdout)}
    assert rows[summary["id"]]["contained"] is True
    shown = run_cli(["drill", "show", summary["id"][:24]], drill_lab.env)
    assert shown.returncode == 0 and "alert-firing" in shown.stdout, shown.stderr

    # A per-model alert already firing (left by a real incident or an earlier run): the
    # evasion drill refuses to start, rather than score someone else's alert as its detection
    # and have the responder block whoever is on top.
    import asyncio

    from console.adapters.alertmanager import AlertmanagerClient

    async def post() -> None:
        am = AlertmanagerClient.connect(drill_lab.settings.alertmanager.url, 5.0)
        try:
            await am.post_alerts(
                [
                    {
                        "labels": {
                            "alertname": "AMLEvasionFlagRateSpike",
                            "model": drill_lab.model,
                            "version": "2",
                            "severity": "critical",
                        }
                    }
                ]
            )
        finally:
            await am.aclose()

    asyncio.run(post())
    refused = run_cli(["drill", "run", "evasion", "--responder", "auto"], drill_lab.env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "AMLEvasionFlagRateSpike" in refused.stderr and "already firing" in refused.stderr


@pytest.mark.timeout(480)
async def test_a_human_responds_from_the_tui_and_the_drill_keeps_the_clock(
    drill_lab: LabStack,
) -> None:
    """`drill run extraction` (human responder) in one process; an on-call engineer in the TUI
    (Pilot) sees the alert, presses b, plans, confirms. The drill scores that response from
    the audit log like any other."""
    import subprocess
    import sys
    import time

    from console.adapters.backends import Backends
    from console.tui.app import ConsoleApp
    from console.tui.screens.dialogs import ConfirmActionModal
    from console.tui.screens.runbook import RunbookScreen

    drill = subprocess.Popen(
        [sys.executable, "-m", "console", "drill", "run", "extraction", "--output", "json"],
        env=drill_lab.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    app = ConsoleApp(
        drill_lab.settings, Backends(drill_lab.settings), start="alerts", refresh_s=0.5
    )

    async def until(check: object, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():  # type: ignore[operator]
            assert drill.poll() is None or what == "the drill's end", drill.communicate()
            assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}"
            await pilot.pause(0.2)

    def attacker_row() -> int | None:
        table = app.screen.query_one("#alerts-table")
        for i in range(table.row_count):  # type: ignore[attr-defined]
            row = [getattr(c, "plain", str(c)) for c in table.get_row_at(i)]  # type: ignore[attr-defined]
            if row[1] == "AMLExtractionSuspected" and row[2].startswith("mallory-1-"):
                return i
        return None

    try:
        async with app.run_test(size=(150, 45)) as pilot:
            await until(
                lambda: app.screen.name == "alerts" and attacker_row() is not None,
                150,
                "the attacker's alert in the console",
            )
            table = app.screen.query_one("#alerts-table")
            table.move_cursor(row=attacker_row())  # type: ignore[attr-defined]
            table.focus()
            await pilot.press("b")
            await until(lambda: isinstance(app.screen, RunbookScreen), 10, "block dialog")
            dialog = app.screen
            assert isinstance(dialog, RunbookScreen)
            await pilot.press("p")
            await until(lambda: dialog.plan is not None, 30, "a plan")
            await pilot.press("y")
            await until(lambda: isinstance(app.screen, ConfirmActionModal), 5, "confirmation")
            await pilot.press("y")
            await until(lambda: dialog.state is not None, 30, "the block")
            assert dialog.state is not None and dialog.state.status == "succeeded"
        out, err = drill.communicate(timeout=180)
    finally:
        if drill.poll() is None:
            drill.kill()
            drill.communicate()
    assert drill.returncode == 0, err
    summary = json.loads(out)
    assert summary["responder"] == "human"
    assert summary["contained"] is True
    # The drill sees the alert by polling Alertmanager once a second; the person at the TUI
    # may see it (and block) within that second, before the drill's next look.
    assert summary["time_to_detect_s"] <= summary["time_to_mitigate_s"] + POLL_S
    assert summary["benign_blocked"] == 0 and summary["false_alerts"] == 0
    folder = Path(summary["report_dir"])
    report = json.loads(
        ((folder if folder.is_absolute() else REPO / folder) / "report.json").read_text()
    )
    mitigation = next(e for e in report["timeline"] if e["kind"] == "mitigation")
    assert "block-client/block" in mitigation["detail"]
    assert "by stack-tester" in mitigation["detail"]  # the operator who pressed b
    assert not any(e["kind"] == "response-started" for e in report["timeline"])
