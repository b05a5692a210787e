"""What `aml-console eval` refuses, each on one line with its exit code, before anything is
recorded: an unknown model, version or attack, a version without its artifact or without an
onnx_sha256 tag, an artifact that is not the one the tag names, a bad holdout file, MLflow
down."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from eval_support import API, invoke, robustness_tags, runs_of, version_tags
from support import LabHandle

from console.lab.seed import SeededModel


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _add_version(url: str, model: str, source: str, run_id: str, tags: dict[str, str]) -> str:
    body = httpx.post(
        f"{url}{API}/model-versions/create",
        json={
            "name": model,
            "source": source,
            "run_id": run_id,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
        timeout=10,
    )
    body.raise_for_status()
    return str(body.json()["model_version"]["version"])


def test_unknown_model_version_and_attack(lab: LabHandle, seeded_model: SeededModel) -> None:
    got = invoke(["eval", "no-such-model-x1", "--version", "1"], lab.env)
    assert got.exit_code == 1
    assert "model 'no-such-model-x1' is not in the registry" in _one_line(got.stderr)

    got = invoke(["eval", seeded_model.name, "--version", "99"], lab.env)
    assert got.exit_code == 1
    assert "has no version '99'" in _one_line(got.stderr)

    got = invoke(["eval", seeded_model.name, "--version", "canary"], lab.env)
    assert got.exit_code == 1
    assert "has no version or alias 'canary'" in _one_line(got.stderr)

    got = invoke(["eval", seeded_model.name, "--version", "1", "--attacks", "fgsm,bogus"], lab.env)
    assert got.exit_code == 1
    line = _one_line(got.stderr)
    assert "unknown attack 'bogus'" in line
    assert "known: fgsm, pgd, hopskipjump, extraction, backdoor" in line

    got = invoke(["eval", seeded_model.name, "--version", "1", "--samples", "0"], lab.env)
    assert got.exit_code == 2
    _one_line(got.stderr)


def test_versions_whose_artifact_cannot_be_trusted(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    url, model = lab.settings.mlflow.url, seeded_model.name
    good = seeded_model.version("1")
    gone = good.source.replace("model.onnx", "gone.onnx")
    missing = _add_version(url, model, gone, good.run_id, {"onnx_sha256": good.sha256})
    untagged = _add_version(url, model, good.source, good.run_id, {})
    other = _add_version(
        url, model, good.source, good.run_id, {"onnx_sha256": seeded_model.sha256["2"]}
    )
    cases = {
        missing: f"{model} version {missing}: artifact",
        untagged: f"{model} version {untagged} has no onnx_sha256 tag",
        other: "does not match the onnx_sha256 tag",
    }
    for version, expected in cases.items():
        got = invoke(["eval", model, "--version", version, "--attacks", "fgsm"], lab.env)
        assert got.exit_code == 1, got.stderr
        assert expected in _one_line(got.stderr)
        assert robustness_tags(version_tags(url, model, version)) == {}
    assert runs_of(url, model) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not a zip", "is not a .npz of numeric arrays (np.savez)"),
        (bytes(range(256)) * 8, "is not a .npz of numeric arrays (np.savez)"),
        (None, "needs arrays x and y"),
    ],
)
def test_bad_holdout_file(
    lab: LabHandle,
    seeded_model: SeededModel,
    tmp_path: Path,
    content: bytes | None,
    expected: str,
) -> None:
    import numpy as np

    path = tmp_path / "held.npz"
    if content is None:
        np.savez(path, rows=np.zeros((3, 64), np.float32))
    else:
        path.write_bytes(content)
    got = invoke(["eval", seeded_model.name, "--version", "1", "--holdout", str(path)], lab.env)
    assert got.exit_code == 1
    assert expected in _one_line(got.stderr)
    assert "pickle" not in got.stderr
    assert robustness_tags(version_tags(lab.settings.mlflow.url, seeded_model.name, "1")) == {}


def test_pixels_outside_the_contract_are_refused(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    import numpy as np

    path = tmp_path / "held.npz"
    np.savez(path, x=np.full((5, 64), 255, np.float32), y=np.zeros(5, np.int64))
    got = invoke(["eval", seeded_model.name, "--version", "1", "--holdout", str(path)], lab.env)
    assert got.exit_code == 1
    assert "has pixels outside 0..16" in _one_line(got.stderr)


def test_mlflow_down_is_one_line(lab: LabHandle) -> None:
    env = {**lab.env, "CONSOLE_MLFLOW__URL": "http://127.0.0.1:9", "CONSOLE_MLFLOW__TIMEOUT_S": "2"}
    got = invoke(["eval", "digits", "--version", "1"], env)
    assert got.exit_code == 1
    assert "mlflow" in _one_line(got.stderr).lower()
