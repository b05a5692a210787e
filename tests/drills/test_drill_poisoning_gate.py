"""The poisoning drill's gate, end to end on a lab stack: the attack registers a backdoored
candidate and records its evaluation (as a registry CI job would), `promote-model` of it is
refused by the robustness gate on that record's backdoor figure (the drill plans it and
records gate-refused, naming the reason), the attack forces it live as an insider would, and
rolling back to the robust version served before is allowed, its figures in the plan. A
person responds here (the confidence-shift alert needs a 30-minute baseline): the test runs
rollback-model once the gateway serves the poisoned version, and the drill scores the
containment."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from lab_stack import LabStack, lab_stack
from support import REPO, LabHandle, run_cli

from console.lab.seed import SeededModel
from console.model_signing import private_key_path
from console.robustness import EVASION_ATTACKS, AttackFigures, RobustnessRecord

BACKDOOR_MISS = "backdoor adversarial_success_rate 1.000 is above the gate's 0.600"


@pytest.fixture
def drill_lab(lab: LabHandle, seeded_model: SeededModel, tmp_path: Path) -> Iterator[LabStack]:
    with lab_stack(lab, seeded_model.name, tmp_path / "run", clients=2) as stack:
        yield stack


def _champion(stack: LabStack) -> str | None:
    body = httpx.get(
        f"{stack.settings.mlflow.url}/api/2.0/mlflow/registered-models/alias",
        params={"name": stack.model, "alias": "champion"},
        timeout=5,
    ).json()
    version = body.get("model_version", {}).get("version")
    return str(version) if version else None


def _robust_record(seeded: SeededModel, stack: LabStack) -> dict[str, str]:
    """A passing record of the champion, signed as ``eval`` signs it (when there is a key)."""
    version = seeded.champion
    key = private_key_path(stack.settings)
    record = RobustnessRecord(
        model=seeded.name,
        version=version,
        onnx_sha256=seeded.sha256[version],
        evaluated_at="2026-12-03T12:00:00+00:00",
        clean_accuracy=0.97,
        detector_fpr=0.03,
        detector_threshold=0.5,
        epsilon=stack.settings.robustness.epsilon,  # measured as the gate asks
        holdout=stack.settings.robustness.holdout,
        samples=200,
        attacks={
            name: AttackFigures(attack=name, adversarial_success_rate=0.2, samples=200)
            for name in EVASION_ATTACKS
        },
    )
    return record.signed_tags(key.read_bytes()) if key.is_file() else record.to_tags()


@pytest.mark.timeout(300)
def test_poisoned_candidate_is_refused_by_the_gate_and_rollback_is_allowed(
    drill_lab: LabStack, seeded_model: SeededModel, tmp_path: Path
) -> None:
    for key, value in _robust_record(seeded_model, drill_lab).items():
        httpx.post(
            f"{drill_lab.settings.mlflow.url}/api/2.0/mlflow/model-versions/set-tag",
            json={
                "name": seeded_model.name,
                "version": seeded_model.champion,
                "key": key,
                "value": value,
            },
            timeout=5,
        ).raise_for_status()
    shipped = yaml.safe_load((REPO / "configs/drills/poisoning.yaml").read_text())
    assert shipped["gate"] == {
        "runbook": "promote-model",
        "params": {"model": "{{ model }}", "version": "{{ attack.version }}"},
        "expect": "refused",
        "expect_reason": "misses the robustness gate",
    }
    scenario = {**shipped, "name": "poisoning-gate", "timeout": "150s"}
    scenario["attack"] = {**shipped["attack"], "start_after": "1s"}
    path = tmp_path / "poisoning-gate.yaml"
    path.write_text(yaml.safe_dump(scenario))

    drill = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console",
            "drill",
            "run",
            str(path),
            "--responder",
            "human",
            "-o",
            "json",
        ],
        env=drill_lab.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert drill.stderr is not None and drill.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(drill.stderr or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while _champion(drill_lab) == seeded_model.champion and time.monotonic() < deadline:
            time.sleep(0.2)
        poisoned = _champion(drill_lab)
        assert poisoned != seeded_model.champion, "the attack never forced its version live"
        # The drill must have seen the gateway serve it, or a rollback looks like no change.
        seen = f"served-version {drill_lab.model} v{poisoned}"
        while not any(seen in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(seen in line for line in lines), lines

        refused = run_cli(
            [
                "runbook",
                "run",
                "promote-model",
                "-p",
                f"model={drill_lab.model}",
                "-p",
                f"version={poisoned}",
                "--yes",
            ],
            drill_lab.env,
        )
        assert refused.returncode != 0
        # Refused on the recorded figure: the backdoor probe, not the want of an evaluation.
        assert f"v{poisoned} misses the robustness gate" in refused.stderr, refused.stderr
        assert BACKDOOR_MISS in refused.stderr, refused.stderr
        assert "no usable recorded evaluation" not in refused.stderr, refused.stderr

        rollback = run_cli(
            ["runbook", "run", "rollback-model", "-p", f"model={drill_lab.model}", "--yes"],
            drill_lab.env,
        )
        assert rollback.returncode == 0, rollback.stdout + rollback.stderr
        shown = " ".join(rollback.stdout.split())
        assert (
            f"v{seeded_model.champion}: clean_accuracy 0.970, max_adversarial_success 0.200"
            in shown
        )
        assert "MISSES THE GATE" not in shown
        drill.wait(timeout=150)
        reader.join(timeout=10)
        stdout, stderr = drill.stdout.read(), "".join(lines)
    finally:
        if drill.poll() is None:
            drill.kill()
    assert drill.returncode == 0, stdout + stderr
    summary = json.loads(stdout)
    assert summary["contained"] is True
    folder = Path(summary["report_dir"])
    report = json.loads(
        ((folder if folder.is_absolute() else REPO / folder) / "report.json").read_text()
    )
    gate = [e for e in report["timeline"] if e["kind"].startswith("gate-")]
    assert [e["kind"] for e in gate] == ["gate-refused"], report["timeline"]
    assert f"version={poisoned}" in gate[0]["detail"]
    assert "precondition robustness.gate failed" in gate[0]["detail"]
    assert BACKDOOR_MISS in gate[0]["detail"], gate[0]["detail"]
    assert not any(e.startswith("gate:") for e in report["errors"]), report["errors"]
    attack = report["attack_reports"][0]
    assert attack["candidate"] == poisoned and attack["promoted"] is True
    evaluation = attack["evaluation"]
    assert evaluation["recorded"] is True and evaluation["max_adversarial_success"] == 1.0
    assert evaluation["samples"] == drill_lab.settings.robustness.samples
    assert BACKDOOR_MISS in evaluation["gate"], evaluation
    served = [e["detail"] for e in report["timeline"] if e["kind"] == "served-version"]
    model = drill_lab.model
    assert served == [f"{model} v{poisoned}", f"{model} v{seeded_model.champion}"], served
    kinds = [e["kind"] for e in report["timeline"]]
    assert "mitigation" in kinds and "contained" in kinds, kinds


@pytest.mark.timeout(200)
def test_a_refusal_for_the_wrong_reason_is_a_drill_error(
    drill_lab: LabStack, tmp_path: Path
) -> None:
    """The attack skips its evaluation: promote-model is still refused, but for want of a
    record, not on a figure, so the scenario's expect_reason makes it a drill error."""
    shipped = yaml.safe_load((REPO / "configs/drills/poisoning.yaml").read_text())
    scenario = {**shipped, "name": "poisoning-wrong-reason", "timeout": "25s"}
    args = {**shipped["attack"]["args"], "evaluate": False, "promote": False}
    scenario["attack"] = {**shipped["attack"], "start_after": "1s", "args": args}
    path = tmp_path / "poisoning-wrong-reason.yaml"
    path.write_text(yaml.safe_dump(scenario))

    drill = run_cli(
        ["drill", "run", str(path), "--responder", "human", "-o", "json"], drill_lab.env
    )
    assert drill.returncode == 3, drill.stdout + drill.stderr  # never forced live: uncontained
    summary = json.loads(drill.stdout)
    folder = Path(summary["report_dir"])
    report = json.loads(
        ((folder if folder.is_absolute() else REPO / folder) / "report.json").read_text()
    )
    gate = [e for e in report["timeline"] if e["kind"].startswith("gate-")]
    assert [e["kind"] for e in gate] == ["gate-refused"], report["timeline"]
    assert "no usable recorded evaluation (not evaluated)" in gate[0]["detail"], gate
    problems = [e for e in report["errors"] if e.startswith("gate:")]
    assert len(problems) == 1, report["errors"]
    assert "with a reason naming 'misses the robustness gate'" in problems[0], problems
    assert report["attack_reports"][0]["evaluation"] == {"skipped": True}
