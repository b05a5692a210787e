"""The seeded registry, read back over MLflow's REST API and artifact proxy."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import onnxruntime
import pytest
from support import LabHandle

from console.errors import LabError
from console.lab import seed, seed_runs
from console.lab.seed import (
    SeededModel,
    describe_model,
    download_artifact,
    ensure_seed_model,
    register_onnx_version,
    seed_model,
)


def rest(lab: LabHandle, endpoint: str, **params: str) -> dict[str, Any]:
    response = httpx.get(
        f"{lab.settings.mlflow.url}/api/2.0/mlflow/{endpoint}",
        params=params,
        timeout=10,
        trust_env=False,
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def fetch_onnx(lab: LabHandle, name: str, version: str) -> bytes:
    uri = rest(lab, "model-versions/get-download-uri", name=name, version=version)["artifact_uri"]
    parts = urlsplit(uri)
    assert parts.scheme == "mlflow-artifacts", uri
    response = httpx.get(
        f"{lab.settings.mlflow.url}/api/2.0/mlflow-artifacts/artifacts{parts.path}",
        timeout=10,
        trust_env=False,
    )
    response.raise_for_status()
    return response.content


def test_seeded_model_has_versions_aliases_and_true_hashes(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    name = seeded_model.name
    model = rest(lab, "registered-models/get", name=name)["registered_model"]
    aliases = {a["alias"]: a["version"] for a in model["aliases"]}
    assert aliases == {"champion": "2", "previous": "1"}
    assert (seeded_model.champion, seeded_model.previous) == ("2", "1")

    found = rest(lab, "model-versions/search", filter=f"name='{name}'")["model_versions"]
    assert sorted(v["version"] for v in found) == ["1", "2"]
    for mv in found:
        tags = {t["key"]: t["value"] for t in mv["tags"]}
        assert tags["framework"] == "onnx" and tags["artifact_path"] == "model.onnx"
        assert 0.9 < float(tags["accuracy"]) <= 1.0
        onnx = fetch_onnx(lab, name, mv["version"])
        assert hashlib.sha256(onnx).hexdigest() == tags["onnx_sha256"]
        assert seeded_model.sha256[mv["version"]] == tags["onnx_sha256"]
        assert download_artifact(lab.settings.mlflow.url, name, mv["version"]) == onnx
        session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
        probabilities = session.run(["probabilities"], {"input": np.zeros((3, 64), np.float32)})
        assert probabilities[0].shape == (3, 10)


def test_versions_differ_logreg_then_mlp(seeded_model: SeededModel) -> None:
    assert [v.kind for v in seeded_model.versions] == ["logreg", "mlp"]
    assert len(set(seeded_model.sha256.values())) == 2


def test_fresh_models_are_independent(lab: LabHandle, seeded_model: SeededModel) -> None:
    other = seed_model(lab.settings.mlflow.url, f"{seeded_model.name}-b", versions=3)
    assert [v.version for v in other.versions] == ["1", "2", "3"]
    assert (other.champion, other.previous) == ("3", "2")
    assert other.versions[2].sha256 == seeded_model.versions[0].sha256  # same logged artifacts
    back = describe_model(lab.settings.mlflow.url, seeded_model.name)
    assert back is not None and (back.champion, back.previous) == ("2", "1")


def test_single_version_has_no_previous(lab: LabHandle, seeded_model: SeededModel) -> None:
    one = seed_model(lab.settings.mlflow.url, f"{seeded_model.name}-one", versions=1)
    assert (one.champion, one.previous) == ("1", None)


def test_existing_name_is_refused(lab: LabHandle, seeded_model: SeededModel) -> None:
    with pytest.raises(LabError, match="already exists"):
        seed_model(lab.settings.mlflow.url, seeded_model.name)


def test_lab_seed_model_exists(lab: LabHandle) -> None:
    digits = describe_model(lab.settings.mlflow.url, lab.settings.lab.seed_model)
    assert digits is not None
    assert [v.version for v in digits.versions] == ["1", "2"]
    assert (digits.champion, digits.previous) == ("2", "1")
    assert all(len(v.sha256) == 64 for v in digits.versions)


def test_reseeding_reuses_the_logged_runs_without_training(
    lab: LabHandle, seeded_model: SeededModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a second ``lab up`` (a new process: no cache) does: the seed's runs are found by
    their tags on the server, nothing is trained or logged again."""

    def no_training() -> None:
        raise AssertionError("the seed models were trained again")

    monkeypatch.setattr(seed, "_seed_artifacts", {})
    monkeypatch.setattr(seed_runs, "train_seed_models", no_training)
    again = seed_model(lab.settings.mlflow.url, f"{seeded_model.name}-again")
    assert [v.run_id for v in again.versions] == [v.run_id for v in seeded_model.versions]
    assert again.sha256 == seeded_model.sha256


def test_ensure_seed_model_reads_back_what_exists(lab: LabHandle) -> None:
    first = ensure_seed_model(lab.settings)
    assert ensure_seed_model(lab.settings) == first
    assert [v.version for v in first.versions] == ["1", "2"]


def test_a_seed_model_without_versions_is_reported(lab: LabHandle) -> None:
    name = f"digits-empty-{uuid.uuid4().hex[:12]}"
    response = httpx.post(
        f"{lab.settings.mlflow.url}/api/2.0/mlflow/registered-models/create",
        json={"name": name},
        timeout=10,
        trust_env=False,
    )
    response.raise_for_status()
    settings = lab.settings.model_copy(
        update={"lab": lab.settings.lab.model_copy(update={"seed_model": name})}
    )
    with pytest.raises(LabError, match="exists but has no versions"):
        ensure_seed_model(settings)


def test_register_onnx_version_adds_a_tagged_version_and_leaves_aliases(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    url, name = lab.settings.mlflow.url, seeded_model.name
    onnx = download_artifact(url, name, "1")
    added = register_onnx_version(
        url, name, onnx, kind="test", accuracy=0.5, description="added", tags={"extra": "yes"}
    )
    assert (added.version, added.kind, added.sha256) == ("3", "test", seeded_model.sha256["1"])
    assert download_artifact(url, name, "3") == onnx
    back = describe_model(url, name)
    assert back is not None and (back.champion, back.previous) == ("2", "1")
    assert back.version("3").sha256 == added.sha256 and back.version("3").accuracy == 0.5
    with pytest.raises(LabError, match="does not exist"):
        register_onnx_version(url, f"{name}-missing", onnx, kind="x", accuracy=0, description="")


async def test_the_seed_calls_work_from_a_running_event_loop(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    back = describe_model(lab.settings.mlflow.url, seeded_model.name)
    assert back is not None and back.sha256 == seeded_model.sha256
