"""A drill produces an incident the way an operator does: opened at the drill's start
(source drill), the drill's timeline as its own, closed at its end; and its postmortem's
times are the drill report's scores. One extraction drill with the scripted responder, on a
lab stack of its own, as tests/drills runs it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from incident_support import stack_cli
from lab_stack import LabStack
from support import run_cli

FIGURES = ("time_to_detect_s", "time_to_mitigate_s", "time_to_contain_s")


@pytest.mark.timeout(480)
def test_a_drill_incident_has_the_drill_timeline_and_scores(stack: LabStack) -> None:
    ran = run_cli(
        ["drill", "run", "extraction", "--responder", "auto", "--output", "json"],
        stack.env,
        timeout=420,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    summary = json.loads(ran.stdout)
    report = json.loads((Path(summary["report_dir"]) / "report.json").read_text())

    listed = json.loads(stack_cli(stack, "incident", "list", "-o", "json").stdout)
    [row] = [r for r in listed if r["drill_id"] == summary["id"]]
    assert row["source"] == "drill" and row["status"] == "closed"
    assert row["client"] == summary["attacker"] and row["model"] == summary["model"]
    assert row["attack_kind"] == "extraction" and row["alert"] == "AMLExtractionSuspected"
    assert datetime.fromisoformat(row["opened_at"]) == datetime.fromisoformat(report["started_at"])
    assert datetime.fromisoformat(row["closed_at"]) == datetime.fromisoformat(report["ended_at"])

    out = stack_cli(stack, "incident", "export", row["id"], "--format", "json").stdout.strip()
    data = json.loads(Path(out).read_text())
    for figure in FIGURES:
        assert data[figure] == summary[figure] == report["scores"][figure], figure
    assert summary["time_to_mitigate_s"] is not None and summary["contained"]
    assert data["drill"]["scores"] == report["scores"]

    timeline = data["timeline"]
    at = [datetime.fromisoformat(e["at"]) for e in timeline]
    assert at == sorted(at)
    kinds = [e["kind"] for e in timeline]
    assert kinds[0] == "opened" and kinds[-1] == "closed"
    order = ["drill-start", "first-request", "alert-firing", "mitigation", "contained"]
    assert [kinds.index(k) for k in order] == sorted(kinds.index(k) for k in order)
    drill_kinds = [e["kind"] for e in sorted(report["timeline"], key=lambda e: e["at_s"])]
    assert [k for k in kinds if k in set(drill_kinds)] == drill_kinds
    started = datetime.fromisoformat(report["started_at"])
    first = next(e for e in report["timeline"] if e["kind"] == "first-request")
    mine = next(e for e in timeline if e["kind"] == "first-request")
    # The incident's first request is the observation the scores count from: the drill
    # stamps its event a little after that observation, never a poll (1 s) later.
    mine_s = (datetime.fromisoformat(mine["at"]) - started).total_seconds()
    assert 0 <= first["at_s"] - mine_s < 1.0
    runs = [e for e in data["actions"] if e["kind"] == "run"]
    assert runs and all(e["operator"] == "stack-tester" for e in runs)
    assert any("contain-extraction run" in e["detail"] for e in runs)
    [evidence] = data["evidence"]  # contain-extraction captures it first
    assert "/evidence (" in evidence["detail"] and evidence["operator"] == "stack-tester"

    md = Path(stack_cli(stack, "incident", "export", row["id"], "--format", "md").stdout.strip())
    text = md.read_text()
    for figure in FIGURES:
        value = summary[figure]
        assert f"{value:.3f} s" in text, figure
    assert "## Drill" in text and "(postmortem.png)" in text
    assert (md.parent / "postmortem.png").stat().st_size > 0
