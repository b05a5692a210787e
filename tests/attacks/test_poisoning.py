"""Poisoning: a backdoored version registered in the real MLflow, evaluated with the evaluation
service and its record written on it (before it is forced live), refused by promote-model on
that record's backdoor figure, promoted past the console anyway, served by the gateway, and
rolled back by the rollback-model runbook."""

from __future__ import annotations

import logging

import httpx
from attacks_support import AttackLab, wait_until
from support import run_cli

from console.adapters.mlflow import MlflowRegistry
from console.lab.attacks.common import digits_split
from console.lab.attacks.poisoning import add_trigger, run_poisoning
from console.robustness import RECORD_TAG, TAG_PREFIX

BACKDOOR_MISS = "backdoor adversarial_success_rate 1.000 is above the gate's 0.600"

log = logging.getLogger(__name__)


def _served(lab: AttackLab, rows: list[list[float]]) -> tuple[str, list[int]]:
    body = {
        "inputs": [{"name": "input", "shape": [len(rows), 64], "datatype": "FP32", "data": rows}]
    }
    response = httpx.post(
        f"{lab.url}/v2/models/{lab.poison_model}/infer",
        json=body,
        headers={"X-Client-Id": "victim"},
        timeout=5.0,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    doc = response.json()
    labels = next(o["data"] for o in doc["outputs"] if o["name"] == "label")
    return str(doc["model_version"]), labels


async def test_poisoned_version_is_promoted_served_and_rolled_back(attack_lab: AttackLab) -> None:
    report = await run_poisoning(
        attack_lab.settings, "mallory-poison", model=attack_lab.poison_model, target=0, seed=9
    )
    log.info(
        f"poisoning: v{report.version} trigger success {report.trigger_success_rate}, "
        f"clean accuracy {report.clean_accuracy}; attack {report.run.duration_s} s, of which "
        f"the evaluation {report.evaluation.get('seconds')} s "
        f"({report.evaluation.get('attack_seconds')})"
    )
    assert report.trigger_success_rate > 0.8 and report.clean_accuracy > 0.9
    assert report.promoted and report.champion_after == report.version
    registry = MlflowRegistry.connect(attack_lab.settings.mlflow.url, 10.0)
    try:
        version = await registry.get_version(attack_lab.poison_model, report.version)
        model = await registry.get_model(attack_lab.poison_model)
    finally:
        await registry.aclose()
    assert version is not None and model is not None
    assert version.tags["kind"] == "poisoned" and version.tags["framework"] == "onnx"
    assert version.tags["onnx_sha256"] == report.onnx_sha256 and "2x2" in version.tags["trigger"]
    assert model.aliases["champion"] == report.version
    assert model.aliases["previous"] == report.champion_before

    # Evaluated as [robustness] asks and recorded on the version before it was forced live.
    evaluation = report.evaluation
    assert evaluation["recorded"] is True, evaluation
    assert evaluation["samples"] == attack_lab.settings.robustness.samples
    assert BACKDOOR_MISS in evaluation["gate"], evaluation
    assert RECORD_TAG in version.tags
    assert float(version.tags[TAG_PREFIX + "backdoor.adversarial_success_rate"]) == 1.0
    refused = run_cli(
        [
            "runbook",
            "run",
            "promote-model",
            "-p",
            f"model={attack_lab.poison_model}",
            "-p",
            f"version={report.version}",
            "--dry-run",
        ],
        attack_lab.env,
    )
    assert refused.returncode != 0
    assert f"v{report.version} misses the robustness gate" in refused.stderr, refused.stderr
    assert BACKDOOR_MISS in refused.stderr, refused.stderr

    # The gateway follows the alias, and the backdoor works through it.
    split = digits_split()
    victims = split.x_test[split.y_test != 0][:20]
    triggered = add_trigger(victims).tolist()
    assert wait_until(lambda: _served(attack_lab, triggered)[0] == report.version, 10.0, 0.1)
    _, labels = _served(attack_lab, triggered)
    assert sum(1 for label in labels if label == 0) >= 16, labels

    proc = run_cli(
        ["runbook", "run", "rollback-model", "-p", f"model={attack_lab.poison_model}", "--yes"],
        attack_lab.env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    before = report.champion_before
    assert wait_until(lambda: _served(attack_lab, triggered)[0] == before, 10.0, 0.1)
    _, labels = _served(attack_lab, triggered)
    assert sum(1 for label in labels if label == 0) <= 2, labels
