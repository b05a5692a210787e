"""The squeeze score computed inside the served model's ONNX graph (``guard_graph``) against
the numpy reference (``FeatureSqueezer``), on the real seeded versions from MLflow."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from console.detectors.squeezing import SQUEEZERS, FeatureSqueezer
from console.lab.attacks.common import digits_split
from console.lab.gateway.models import LoadRefused, make_session, verify_and_load
from console.lab.seed import SeededModel, download_artifact


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(3)
    clean = digits_split().x_test[:150]
    noisy = np.clip(clean + rng.normal(0, 2.0, clean.shape), 0, 16)
    uniform = rng.uniform(0, 16, (60, 64))
    return np.concatenate([clean, noisy, uniform]).astype(np.float32)


@pytest.mark.parametrize(
    "squeezers", [["bits2"], ["median2"], ["median3"], ["bits2", "median2", "median3"]]
)
def test_graph_scores_equal_the_numpy_reference(
    lab: Any, module_model: SeededModel, squeezers: list[str]
) -> None:
    x = _inputs()
    for version in (v.version for v in module_model.versions):
        onnx = download_artifact(lab.settings.mlflow.url, module_model.name, version)
        loaded = verify_and_load(
            module_model.name, version, hashlib.sha256(onnx).hexdigest(), onnx, squeezers
        )
        labels, probabilities, scores = loaded.run(x)

        plain = make_session(onnx)
        want_labels, want_probabilities = plain.run(["label", "probabilities"], {"input": x})
        reference = FeatureSqueezer(tuple((n, SQUEEZERS[n]) for n in squeezers))
        batch_probabilities = plain.run(["probabilities"], {"input": reference.batch(x)})[0]
        want_scores = reference.scores(batch_probabilities, len(x))

        np.testing.assert_array_equal(labels, want_labels)
        np.testing.assert_allclose(probabilities, want_probabilities, atol=1e-6)
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)
        assert scores.shape == (len(x),) and scores.min() >= 0.0 and scores.max() <= 1.0
        assert scores.std() > 0.01  # the inputs were chosen to spread the scores


def test_one_row_and_no_squeezer(lab: Any, module_model: SeededModel) -> None:
    onnx = download_artifact(lab.settings.mlflow.url, module_model.name, module_model.champion)
    sha = hashlib.sha256(onnx).hexdigest()
    row = _inputs()[:1]
    guarded = verify_and_load(module_model.name, module_model.champion, sha, onnx, ["bits2"])
    unguarded = verify_and_load(module_model.name, module_model.champion, sha, onnx, [])
    (label, _, score), (plain_label, _, zero) = guarded.run(row), unguarded.run(row)
    assert label.shape == (1,) and label[0] == plain_label[0]
    assert guarded.guarded and not unguarded.guarded
    assert zero.tolist() == [0.0] and score.shape == (1,)


def test_a_model_outside_the_contract_is_refused_with_the_reason() -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["y"])],
        "not-digits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 64])],
    )
    onnx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.ir_version = 8
    data = onnx.SerializeToString()
    with pytest.raises(LoadRefused) as refused:
        verify_and_load("m", "1", hashlib.sha256(data).hexdigest(), data, ["bits2"])
    assert refused.value.reason == "contract_mismatch"
    assert "'label'" in str(refused.value) and "'probabilities'" in str(refused.value)

    garbage = b"definitely not protobuf"
    with pytest.raises(LoadRefused) as refused:
        verify_and_load("m", "1", hashlib.sha256(garbage).hexdigest(), garbage, ["bits2"])
    assert refused.value.reason == "invalid_onnx"
