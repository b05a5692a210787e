"""`aml-console eval` against the session lab's real MLflow: the figures land on the version
(tags, the signed record, a run with metrics and report.json), each figure under its name in
-o json, --gate's exit code against the config's thresholds, read-only mode, --holdout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from eval_support import (
    digits_pick,
    download_onnx,
    get_run,
    invoke,
    read_artifact,
    robustness_tags,
    runs_of,
    version_tags,
)
from support import LabHandle

from console.detectors.squeezing import FeatureSqueezer
from console.evaluation.recording import trusted_keys
from console.lab.seed import SeededModel
from console.robustness import RECORD_TAG, recorded_robustness
from console.robustness_seal import SIGNATURE_TAG

SAMPLES = 24
ALL = "fgsm,pgd,hopskipjump,extraction,backdoor"


def test_figures_land_on_the_version_as_tags_metrics_and_report(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    model, url = seeded_model.name, lab.settings.mlflow.url
    got = invoke(
        [
            "eval",
            model,
            "--version",
            "2",
            "--attacks",
            ALL,
            "--samples",
            str(SAMPLES),
            "--budget",
            "600",
            "-o",
            "json",
        ],
        {**lab.env, "CONSOLE_ROBUSTNESS__SAMPLES": str(SAMPLES)},  # the gate's measurement
    )
    assert got.exit_code == 0, got.stderr
    doc = got.json()
    assert doc["recorded_record"] is True and doc["partial"] == []
    # Each figure under the key that names it.
    for key in ("clean_accuracy", "detector_fpr", "detector_threshold", "max_adversarial_success"):
        assert isinstance(doc[key], float), key
    for attack in ("fgsm", "pgd", "hopskipjump"):
        figures = doc["attacks"][attack]
        assert 0 <= figures["adversarial_success_rate"] <= 1
        assert set(figures["by_strength"]) == {"1.0", "2.0", "4.0"}
        assert figures["adversarial_success_rate"] == figures["by_strength"]["1.0"]
    assert 0 < doc["attacks"]["hopskipjump"]["queries"] <= 600
    assert doc["attacks"]["extraction"]["budget"] == 600
    assert 0.5 < doc["attacks"]["extraction"]["surrogate_agreement"] <= 1
    assert set(doc["attacks"]["backdoor"]["by_strength"]) == {"1x1", "2x2", "3x3"}
    assert doc["attacks"]["backdoor"]["trigger"]["size"] in (1, 2, 3)
    # Stronger attacks fool more: the curve is monotone, and 4 pixels fool (nearly) all.
    curve = doc["attacks"]["pgd"]["by_strength"]
    assert curve["1.0"] <= curve["2.0"] <= curve["4.0"] and curve["4.0"] > 0.9
    assert doc["recorded"] is True and doc["gate"]["passed"] is (not doc["gate"]["misses"])

    # The figures recomputed here, with onnxruntime on the version's own artifact.
    onnx = download_onnx(url, model, "2")
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    x, y = digits_pick(SAMPLES)
    labels = session.run(["label"], {"input": x})[0]
    assert doc["clean_accuracy"] == pytest.approx(float((labels == y).mean()), abs=1e-4)
    assert doc["correct_clean"] == int((labels == y).sum())
    squeezer = FeatureSqueezer()
    probabilities = session.run(["probabilities"], {"input": squeezer.batch(x)})[0]
    fpr = float((squeezer.scores(probabilities, len(x)) >= 0.5).mean())
    assert doc["detector_fpr"] == pytest.approx(fpr, abs=1e-4)

    # Tags on the version, the record signed and usable for this artifact.
    tags = version_tags(url, model, "2")
    assert tags["aml.robustness.clean_accuracy"] == f"{doc['clean_accuracy']:.4f}"
    assert tags["aml.robustness.pgd.adversarial_success_rate"] == (
        f"{doc['attacks']['pgd']['adversarial_success_rate']:.4f}"
    )
    assert tags["aml.robustness.onnx_sha256"] == seeded_model.sha256["2"]
    assert tags["aml.robustness.run_id"] == doc["run_id"]
    assert SIGNATURE_TAG in tags
    found = recorded_robustness(tags, tags["onnx_sha256"], trusted_keys(lab.settings))
    assert found.usable, found.problem
    assert found.record is not None and found.record.clean_accuracy == doc["clean_accuracy"]
    assert robustness_tags(version_tags(url, model, "1")) == {}  # only the version asked

    # The run: metrics, its tags, report.json.
    run = get_run(url, doc["run_id"])
    assert run["info"]["status"] == "FINISHED"
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert metrics["clean_accuracy"] == pytest.approx(doc["clean_accuracy"])
    assert metrics["fgsm.by_strength.2.0"] == pytest.approx(
        doc["attacks"]["fgsm"]["by_strength"]["2.0"]
    )
    assert metrics["extraction.surrogate_agreement"] == pytest.approx(
        doc["attacks"]["extraction"]["surrogate_agreement"]
    )
    assert metrics["backdoor.by_strength.2x2"] == pytest.approx(
        doc["attacks"]["backdoor"]["by_strength"]["2x2"]
    )
    run_tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert run_tags["aml.model"] == model and run_tags["aml.version"] == "2"
    report = json.loads(read_artifact(url, run["info"]["artifact_uri"], "report.json"))
    assert report["clean_accuracy"] == doc["clean_accuracy"]
    assert report["attacks"]["hopskipjump"]["queries"] == doc["attacks"]["hopskipjump"]["queries"]
    assert report["cost"]["pgd"]["model_rows"] > 0
    assert report["attacks"]["backdoor"]["trigger"] == doc["attacks"]["backdoor"]["trigger"]
    assert [r["info"]["run_id"] for r in runs_of(url, model)] == [doc["run_id"]]


def test_gate_exit_code_names_each_missed_threshold(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    args = [
        "eval",
        seeded_model.name,
        "--version",
        "champion",
        "--attacks",
        "fgsm",
        "--samples",
        "100",
        "--gate",
    ]
    only_fgsm = {"CONSOLE_ROBUSTNESS__ATTACKS": '["fgsm"]'}  # the gate asks only what ran
    tight = {
        **lab.env,
        **only_fgsm,
        "CONSOLE_ROBUSTNESS__MIN_CLEAN_ACCURACY": "0.999",
        "CONSOLE_ROBUSTNESS__MAX_ADVERSARIAL_SUCCESS": "0.0",
    }
    got = invoke(args, tight)
    assert got.exit_code == 3, got.stderr
    gate_lines = [line for line in got.stderr.splitlines() if line.startswith("gate: ")]
    assert len(gate_lines) == 2, got.stderr
    assert "clean_accuracy" in gate_lines[0] and "below the gate's 0.999" in gate_lines[0]
    assert gate_lines[1].startswith("gate: fgsm adversarial_success_rate")
    assert "misses the gate" in got.stdout
    assert got.stdout.count("is below the gate") == 1  # 100 digits: the MLP misses a few
    # Missing the gate still records what was measured: CI gets the figures either way.
    tags = version_tags(lab.settings.mlflow.url, seeded_model.name, "2")
    assert RECORD_TAG in tags

    loose = {
        **lab.env,
        **only_fgsm,
        "CONSOLE_ROBUSTNESS__MIN_CLEAN_ACCURACY": "0.5",
        "CONSOLE_ROBUSTNESS__MAX_ADVERSARIAL_SUCCESS": "1.0",
        "CONSOLE_ROBUSTNESS__MAX_DETECTOR_FPR": "1.0",
    }
    passed = invoke([*args, "-o", "json"], loose)
    assert passed.exit_code == 0, passed.stderr
    assert passed.json()["gate"] == {"passed": True, "misses": []}
    assert passed.json()["version"] == "2"  # champion, resolved


def test_read_only_measures_and_writes_nothing(lab: LabHandle, seeded_model: SeededModel) -> None:
    url, model = lab.settings.mlflow.url, seeded_model.name
    got = invoke(
        [
            "--read-only",
            "eval",
            model,
            "--version",
            "1",
            "--attacks",
            "fgsm,extraction",
            "--samples",
            "20",
            "--budget",
            "200",
            "-o",
            "json",
        ],
        lab.env,
    )
    assert got.exit_code == 0, got.stderr
    assert got.json()["recorded"] is False and got.json()["run_id"] == ""
    assert 0 < got.json()["clean_accuracy"] <= 1
    assert "read-only mode: measured only, nothing was written to the registry" in got.stderr
    assert robustness_tags(version_tags(url, model, "1")) == {}
    assert runs_of(url, model) == []


def test_holdout_file(lab: LabHandle, seeded_model: SeededModel, tmp_path: Path) -> None:
    x, y = digits_pick(40, seed=7)
    path = tmp_path / "held.npz"
    np.savez(path, x=x, y=y)
    got = invoke(
        [
            "--read-only",
            "eval",
            seeded_model.name,
            "--version",
            "1",
            "--attacks",
            "fgsm",
            "--holdout",
            str(path),
            "--samples",
            "40",
            "-o",
            "json",
        ],
        lab.env,
    )
    assert got.exit_code == 0, got.stderr
    doc = got.json()
    assert doc["holdout_source"] == "file held.npz" and doc["samples"] == 40
    digest = hashlib.sha256(x.astype(np.float32).tobytes() + y.astype(np.int64).tobytes())
    assert doc["holdout"] == "sha256:" + digest.hexdigest()
    onnx = download_onnx(lab.settings.mlflow.url, seeded_model.name, "1")
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    labels = session.run(["label"], {"input": x})[0]
    assert doc["clean_accuracy"] == pytest.approx(float((labels == y).mean()), abs=1e-4)

    table = invoke(
        [
            "--read-only",
            "eval",
            seeded_model.name,
            "--version",
            "1",
            "--attacks",
            "fgsm",
            "--holdout",
            str(path),
        ],
        lab.env,
    )
    assert table.exit_code == 0, table.stderr
    assert f"clean_accuracy {doc['clean_accuracy']:.3f}" in table.stdout
    assert "fgsm" in table.stdout and "gate:" in table.stdout
