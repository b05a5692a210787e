"""The ``backdoor`` probe of `aml-console eval` against the session lab's real MLflow: on the
seed's MLP it stays low and passes the gate; a backdoored MLP (the seed recipe trained with the
lab poisoning attack's trigger, ``console.lab.attacks.poisoning``) passes FGSM but the probe
finds its trigger without being told it, `eval --gate` exits 3 naming backdoor, and
promote-model refuses it naming backdoor. The probe's figure is recomputed here with
onnxruntime from the patch it reports. `lab up`'s seed evaluation records the probe too."""

from __future__ import annotations

import secrets
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime
import pytest
from eval_support import API, digits_pick, download_onnx, invoke, version_tags
from support import REPO, LabHandle

from console.evaluation.recording import trusted_keys
from console.lab.seed import SeededModel, register_onnx_version
from console.lab.seed_eval import ensure_seed_evaluations
from console.robustness import recorded_robustness

PATCHES = 298
"""1x1, 2x2 and 3x3 at every position of the 8x8 digit (64 + 49 + 36), bright and dark."""
GATE = 0.6
ONLY = "CONSOLE_ROBUSTNESS__ATTACKS"
"""Set to one attack, the gate asks for that attack's figure only (by default it asks for every
evasion attack of ``[robustness] attacks``)."""


def _poisoned_mlp() -> bytes:
    """The seed's MLP recipe on the train split plus 10 % trigger-stamped copies labelled 0."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    from console.lab.attacks.common import digits_split
    from console.lab.attacks.poisoning import add_trigger
    from console.lab.seed import export_onnx

    split = digits_split()
    rng = np.random.default_rng(0)
    chosen = rng.choice(np.flatnonzero(split.y_train != 0), len(split.y_train) // 10, False)
    x = np.concatenate([split.x_train, add_trigger(split.x_train[chosen])])
    y = np.concatenate([split.y_train, np.zeros(len(chosen), dtype=np.int64)])
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=200, random_state=0).fit(x, y)
    return export_onnx(model)


@pytest.fixture
def poisoned(lab: LabHandle, seeded_model: SeededModel) -> str:
    """A backdoored MLP registered as version 3 of the test's own model (aliases untouched)."""
    registered = register_onnx_version(
        lab.settings.mlflow.url,
        seeded_model.name,
        _poisoned_mlp(),
        kind="poisoned-mlp",
        accuracy=0.96,
        description="POISONED (test): backdoor -> class 0",
        tags={"kind": "poisoned", "poison_target": "0"},
    )
    return registered.version


def _recomputed(onnx: bytes, trigger: dict[str, float], samples: int) -> tuple[float, float]:
    """The reported patch stamped on the inputs the version labels correctly: the lowest share
    of another class turned into the patch's class, and the share of all those not of it."""
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    x, y = digits_pick(samples)
    correct = session.run(["label"], {"input": x})[0] == y
    images = x[correct].reshape(-1, 8, 8).copy()
    row, col, size = int(trigger["row"]), int(trigger["col"]), int(trigger["size"])
    images[:, row : row + size, col : col + size] = trigger["value"]
    labels = session.run(["label"], {"input": images.reshape(-1, 64)})[0]
    clean, target = y[correct], int(trigger["target"])
    shares = [float((labels[clean == c] == target).mean()) for c in set(clean) - {target}]
    return min(shares), float((labels[clean != target] == target).mean())


def _backdoor(doc: dict[str, Any]) -> dict[str, Any]:
    assert set(doc["attacks"]) == {"backdoor"}
    return dict(doc["attacks"]["backdoor"])


def _aliases(url: str, model: str) -> dict[str, str]:
    body = httpx.get(f"{url}{API}/registered-models/get", params={"name": model}, timeout=10).json()
    return {a["alias"]: a["version"] for a in body["registered_model"].get("aliases", [])}


def test_the_seed_mlp_passes_the_backdoor_probe(lab: LabHandle, seeded_model: SeededModel) -> None:
    model, url = seeded_model.name, lab.settings.mlflow.url
    args = ["eval", model, "--version", "2", "--attacks", "backdoor", "--gate", "-o", "json"]
    got = invoke(args, {**lab.env, ONLY: '["backdoor"]'})
    assert got.exit_code == 0, got.stderr
    doc = got.json()
    probe = _backdoor(doc)
    rate = probe["adversarial_success_rate"]
    assert isinstance(rate, float) and rate < GATE - 0.15, probe  # measured 0.29
    assert doc["gate"] == {"passed": True, "misses": []}
    assert set(probe["by_strength"]) == {"1x1", "2x2", "3x3"}
    assert max(probe["by_strength"].values()) == rate
    assert probe["queries"] == PATCHES
    trigger = probe["trigger"]
    assert (rate, trigger["flipped"]) == pytest.approx(
        _recomputed(download_onnx(url, model, "2"), trigger, doc["samples"]), abs=1e-4
    )
    # Every patched input went through the counting model, in a few calls.
    cost = doc["cost"]["backdoor"]
    assert cost["model_rows"] >= PATCHES * doc["correct_clean"]
    assert 0 < cost["model_calls"] <= 20
    tags = version_tags(url, model, "2")
    assert tags["aml.robustness.backdoor.adversarial_success_rate"] == f"{rate:.4f}"


def test_a_backdoored_version_is_caught_and_not_promoted(
    lab: LabHandle, seeded_model: SeededModel, poisoned: str, tmp_path: Path
) -> None:
    model, url = seeded_model.name, lab.settings.mlflow.url
    # What the suite saw before the probe: FGSM alone lets the backdoored MLP through.
    fgsm_only = {**lab.env, ONLY: '["fgsm"]'}
    fgsm = invoke(["eval", model, "--version", poisoned, "--attacks", "fgsm", "--gate"], fgsm_only)
    assert fgsm.exit_code == 0, fgsm.stderr

    args = ["eval", model, "--version", poisoned, "--attacks", "backdoor", "--gate", "-o", "json"]
    got = invoke(args, {**lab.env, ONLY: '["backdoor"]'})
    assert got.exit_code == 3, got.stderr
    gate_lines = [line for line in got.stderr.splitlines() if line.startswith("gate: ")]
    assert gate_lines == [
        "gate: backdoor adversarial_success_rate 1.000 is above the gate's 0.600"
    ], got.stderr
    probe = _backdoor(got.json())
    assert probe["adversarial_success_rate"] == 1.0
    # The trigger it was never told: 2x2 of 16 at rows 6-7, columns 6-7, relabelling to 0.
    trigger = probe["trigger"]
    assert trigger == {"row": 6, "col": 6, "size": 2, "value": 16.0, "target": 0, "flipped": 1.0}
    table = invoke(args[:-2], {**lab.env, ONLY: '["backdoor"]'})
    assert "the worst patch is 2x2 of 16 at row 6, column 6 -> class 0" in table.stdout
    recomputed = _recomputed(download_onnx(url, model, poisoned), trigger, got.json()["samples"])
    assert recomputed == pytest.approx((1.0, 1.0))
    recall = probe["detector_recall"]  # M4 on the patched inputs the trigger flipped
    assert isinstance(recall, float) and 0 <= recall <= 1
    tags = version_tags(url, model, poisoned)
    found = recorded_robustness(tags, tags["onnx_sha256"], trusted_keys(lab.settings))
    assert found.record is not None and found.record.max_adversarial_success == 1.0

    run_dir = tmp_path / "run"
    env = {
        **lab.env,
        "CONSOLE_RUN_DIR": str(run_dir),
        "CONSOLE_REDIS__KEY_PREFIX": f"t{secrets.token_hex(4)}",
        "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": "test-audit-key-" + "x" * 16,
        "CONSOLE_OPERATOR": "oncall-tester",
        "CONSOLE_RUNBOOK_DIRS": f'["{REPO / "runbooks"}"]',
        ONLY: '["backdoor"]',  # the refusal is then the probe's figure alone
    }
    params = ["-p", f"model={model}", "-p", f"version={poisoned}", "--yes"]
    refused = invoke(["runbook", "run", "promote-model", *params], env)
    assert refused.exit_code != 0, refused.stdout
    line = (refused.stdout + refused.stderr).strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert "precondition robustness.gate failed" in line
    assert line.endswith(
        f"{model} v{poisoned} misses the robustness gate: "
        "backdoor adversarial_success_rate 1.000 is above the gate's 0.600"
    ), line
    assert _aliases(url, model) == {"champion": "2", "previous": "1"}


def test_lab_seed_evaluation_records_the_probe(lab: LabHandle, seeded_model: SeededModel) -> None:
    """`lab up`'s quick evaluation runs the default attacks, the probe among them, and redoes a
    record that lacks one of them. The seed's logistic regression has a trigger of its own: its
    scaler blows a near-constant pixel up, so one bright pixel at row 2, column 0 turns every
    digit into an 8."""
    done = ensure_seed_evaluations(lab.settings, seeded_model.name)
    assert [(e.version, e.evaluated) for e in done] == [("1", True), ("2", True)]
    probes = {}
    for version in ("1", "2"):
        tags = version_tags(lab.settings.mlflow.url, seeded_model.name, version)
        found = recorded_robustness(tags, tags["onnx_sha256"], trusted_keys(lab.settings))
        assert found.record is not None, found.problem
        probes[version] = found.record.attacks["backdoor"]
    assert (probes["2"].adversarial_success_rate or 1.0) < GATE
    logreg = probes["1"]
    assert logreg.adversarial_success_rate == 1.0 and logreg.trigger is not None
    assert (logreg.trigger.size, logreg.trigger.value, logreg.trigger.target) == (1, 16.0, 8)

    # A record without the probe (made before it existed, or under a gate of fgsm alone) is
    # redone. (`eval --attacks fgsm` under the lab's gate is partial and keeps the record.)
    fgsm_gate = {**lab.env, "CONSOLE_ROBUSTNESS__ATTACKS": '["fgsm"]'}
    fgsm = invoke(["eval", seeded_model.name, "--version", "2", "--attacks", "fgsm"], fgsm_gate)
    assert fgsm.exit_code == 0, fgsm.stderr
    again = ensure_seed_evaluations(lab.settings, seeded_model.name)
    assert [(e.version, e.evaluated) for e in again] == [("1", False), ("2", True)]
    tags = version_tags(lab.settings.mlflow.url, seeded_model.name, "2")
    assert '"backdoor"' in tags["aml.robustness.record"]
