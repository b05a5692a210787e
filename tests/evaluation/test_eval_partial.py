"""An evaluation measured otherwise than the gate asks (an attack left out, another held-out
set, repeated rows) is partial: it gets its MLflow run, and the version keeps its record, so
``eval --attacks extraction`` or an easy ``--holdout`` never replaces a complete record."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from eval_support import digits_pick, invoke, runs_of, version_tags
from gate_records import put_gate_record
from support import LabHandle

from console.lab.seed import SeededModel
from console.robustness import RECORD_TAG
from console.robustness_seal import SIGNATURE_TAG


def test_a_partial_evaluation_keeps_the_versions_record(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    url, model = lab.settings.mlflow.url, seeded_model.name

    put_gate_record(lab.settings, seeded_model, "2")
    before = version_tags(url, model, "2")
    assert RECORD_TAG in before
    args = ["eval", model, "--version", "champion", "--attacks", "extraction", "--budget", "200"]
    got = invoke([*args, "-o", "json"], lab.env)
    assert got.exit_code == 0, got.stderr
    doc = got.json()
    assert doc["recorded"] is True and doc["recorded_record"] is False
    assert doc["partial"] and doc["partial"][0].startswith("not measured: backdoor, fgsm")
    lines = [line for line in got.stderr.splitlines() if line.startswith("partial evaluation")]
    assert lines == [f"partial evaluation: the version's record was kept ({doc['partial'][0]})"]
    after = version_tags(url, model, "2")
    assert after[RECORD_TAG] == before[RECORD_TAG]
    assert after.get(SIGNATURE_TAG) == before.get(SIGNATURE_TAG)
    # The run and its metrics are kept all the same.
    assert [r["info"]["run_id"] for r in runs_of(url, model)] == [doc["run_id"]]
    table = invoke(args, lab.env)
    assert table.exit_code == 0 and "the version's record was kept" in table.stdout


def test_an_easy_holdout_file_is_not_recorded_unless_the_gate_names_it(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    url, model = lab.settings.mlflow.url, seeded_model.name
    gate = {
        **lab.env,
        "CONSOLE_ROBUSTNESS__ATTACKS": '["fgsm"]',
        "CONSOLE_ROBUSTNESS__SAMPLES": "40",
    }
    x, y = digits_pick(40, seed=3)
    path = tmp_path / "held.npz"
    np.savez(path, x=x, y=y)
    sha = "sha256:" + hashlib.sha256(x.tobytes() + y.astype(np.int64).tobytes()).hexdigest()
    args = ["eval", model, "--version", "1", "--attacks", "fgsm", "--holdout", str(path)]
    got = invoke([*args, "-o", "json"], gate)
    assert got.exit_code == 0, got.stderr
    assert got.json()["holdout"] == sha and got.json()["unique_samples"] == 40
    assert got.json()["recorded_record"] is False
    assert f"measured on holdout {sha[:60]}, the gate asks digits-split:" in got.stderr
    assert RECORD_TAG not in version_tags(url, model, "1")

    # Repeated rows: 40 rows of 4 digits count 4 distinct inputs, fewer than the gate's 40.
    repeated = tmp_path / "repeated.npz"
    np.savez(repeated, x=np.repeat(x[:4], 10, axis=0), y=np.repeat(y[:4], 10))
    sha_repeated = hashlib.sha256(
        np.repeat(x[:4], 10, axis=0).tobytes() + np.repeat(y[:4], 10).astype(np.int64).tobytes()
    ).hexdigest()
    env = {**gate, "CONSOLE_ROBUSTNESS__HOLDOUT": "sha256:" + sha_repeated}
    got = invoke(
        [
            "eval",
            model,
            "--version",
            "1",
            "--attacks",
            "fgsm",
            "--holdout",
            str(repeated),
            "--gate",
        ],
        env,
    )
    assert got.exit_code == 3, got.stderr
    assert "gate: measured on 4 distinct held-out inputs, the gate asks 40" in got.stderr
    assert RECORD_TAG not in version_tags(url, model, "1")

    # The gate naming the file (an agreed held-out set): recorded, the record naming it.
    got = invoke([*args, "-o", "json"], {**gate, "CONSOLE_ROBUSTNESS__HOLDOUT": sha})
    assert got.exit_code == 0, got.stderr
    assert got.json()["recorded_record"] is True
    assert f'"holdout":"{sha}"' in version_tags(url, model, "1")[RECORD_TAG]


def test_the_record_names_the_builtin_split_and_the_detector_settings(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    env = {
        **lab.env,
        "CONSOLE_ROBUSTNESS__ATTACKS": '["fgsm"]',
        "CONSOLE_ROBUSTNESS__SAMPLES": "20",
    }
    args = ["eval", seeded_model.name, "--version", "2", "--attacks", "fgsm", "--samples", "20"]
    got = invoke([*args, "-o", "json"], env)
    assert got.exit_code == 0, got.stderr
    record = version_tags(lab.settings.mlflow.url, seeded_model.name, "2")[RECORD_TAG]
    assert f'"holdout":"{lab.settings.robustness.holdout}"' in record
    assert '"squeezers":["bits2"]' in record and '"unique_samples":20' in record
    # The record's detector was measured at 0.5: a gate expecting 0.9 says so.
    strict = {**env, "CONSOLE_DETECTORS__FLAG_THRESHOLD": "0.9"}
    # eval measures with the configured detector, so its own record matches ...
    again = invoke([*args, "--gate", "-o", "json"], strict)
    assert "flag_threshold" not in again.stdout
    from console.config import load_settings
    from console.robustness import RobustnessRecord, detector_misses

    measured = RobustnessRecord.model_validate_json(record)
    lax = load_settings(detectors={"flag_threshold": 0.9}, models={"served": ["digits"]})
    whys = [m.why for m in detector_misses(measured, lax.detectors)]
    assert whys == ["detector measured at flag_threshold 0.5, [detectors] has 0.9"]
