"""Replay through a real third-party Open Inference (V2) server: MLServer, from its own
virtualenv, serving versions 1 and 2 of a freshly seeded model from their registry artifacts
(the ``mlserver`` fixture, replay_stack.py). Every figure is checked against onnxruntime called
directly on the same arrays and against the local replay."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
from replay_stack import ADVERSARIAL, CLEAN, OLD, UNLABELLED, MLServer, Store
from replay_support import direct, invoke
from support import LabHandle

from console.lab.seed import download_artifact, register_onnx_version

ALL = CLEAN + ADVERSARIAL + UNLABELLED + OLD


def _json(env: dict[str, str], *args: str) -> Any:
    got = invoke(["replay", "-o", "json", *args], env)
    assert got.exit_code == 0, got.stderr
    assert "Traceback" not in got.stderr
    return got.json()


def test_mlserver_answers_in_its_own_shapes(mlserver: MLServer, store: Store) -> None:
    """What the console's client has to read: MLServer's NumPy codec sends the INT64 label as
    [N, 1] (it adds a dimension to 1-D outputs) with a content-type parameter, and says which
    version answered."""
    name, rows = mlserver.model.name, store.inputs([r["sample_id"] for r in store.records[:3]])
    body = {
        "inputs": [
            {"name": "input", "shape": [3, 64], "datatype": "FP32", "data": rows.ravel().tolist()}
        ],
        "outputs": [{"name": "label"}, {"name": "probabilities"}],
    }
    with httpx.Client(base_url=mlserver.url, trust_env=False, timeout=10) as http:
        answer = http.post(f"/v2/models/{name}/versions/1/infer", json=body).json()
        metadata = http.get(f"/v2/models/{name}").json()
    assert answer["model_name"] == name and answer["model_version"] == "1"
    shapes = {o["name"]: (o["datatype"], o["shape"]) for o in answer["outputs"]}
    assert shapes == {"label": ("INT64", [3, 1]), "probabilities": ("FP32", [3, 10])}
    assert metadata["name"] == name


def test_replay_through_mlserver_equals_onnxruntime_and_the_local_replay(
    mlserver: MLServer, env: dict[str, str], store: Store, sessions: dict[str, Any]
) -> None:
    args = ("--model", mlserver.model.name, "--versions", "1,2")
    remote = _json(env, *args, "--endpoint", mlserver.url, "--batch-size", "64")
    local = _json(env, *args)
    assert remote["backend"] == f"V2 endpoint {mlserver.url}"
    assert [v["version"] for v in remote["versions"]] == ["1", "2"]
    samples = remote["samples"]
    assert len(samples) == ALL
    ids = [s["sample_id"] for s in samples]
    assert ids == [s["sample_id"] for s in local["samples"]]

    truth = direct(sessions, store.inputs(ids))
    for version in ("1", "2"):
        predictions = [s["predictions"][version] for s in samples]
        assert predictions == truth[version]["labels"].tolist()
        assert predictions == [s["predictions"][version] for s in local["samples"]]
        for key, column, tolerance in (
            ("confidences", "confidence", 1e-6),
            ("squeeze_scores", "squeeze", 1e-5),
        ):
            got = [s[key][version] for s in samples]
            np.testing.assert_allclose(got, truth[version][column], atol=tolerance)
            np.testing.assert_allclose(
                got, [s[key][version] for s in local["samples"]], atol=tolerance
            )

    flips = truth["1"]["labels"] != truth["2"]["labels"]
    assert flips.any(), "the logistic regression and the MLP should disagree on FGSM digits"
    assert [s["flip"] for s in samples] == flips.tolist()
    summary = remote["summary"]
    assert summary["flips"] == int(flips.sum()) == local["summary"]["flips"]
    assert summary["flip_rate"] == local["summary"]["flip_rate"]
    assert summary["resistance"] == local["summary"]["resistance"]
    assert [v["fooled"] for v in summary["versions"]] == [
        v["fooled"] for v in local["summary"]["versions"]
    ]

    by_id = store.by_id()
    labels = np.array([by_id[i].get("label", -1) for i in ids])
    flagged = np.array([by_id[i]["flagged"] for i in ids])
    fool_baseline = flagged & (labels >= 0) & (truth["1"]["labels"] != labels)
    resisted = int((fool_baseline & (truth["2"]["labels"] == labels)).sum())
    (resistance,) = summary["resistance"]
    assert resistance["version"] == "2" and resistance["resisted"] == resisted
    assert resistance["fool_baseline"] == int(fool_baseline.sum()) > 0
    rate = resisted / fool_baseline.sum()
    assert remote["verdict"] == local["verdict"]
    assert remote["verdict"].startswith(
        f"version 2 resists {rate * 100:.0f}% ({resisted} of {int(fool_baseline.sum())}) "
        "of the flagged inputs that fool version 1"
    ), remote["verdict"]


def test_a_version_mlserver_does_not_serve_is_one_line(
    lab: LabHandle, mlserver: MLServer, env: dict[str, str]
) -> None:
    """Version 3 is in the registry (so the replay gets as far as the endpoint) but not on the
    server: MLServer's own 404, one line, exit 1, no traceback."""
    model = mlserver.model
    onnx = download_artifact(lab.settings.mlflow.url, model.name, "1")
    added = register_onnx_version(
        lab.settings.mlflow.url,
        model.name,
        onnx,
        kind="logreg",
        accuracy=model.version("1").accuracy,
        description="registered, not served by the test's MLServer",
    )
    assert added.version not in mlserver.versions
    got = invoke(
        ["replay", "--model", model.name, "--versions", f"1,{added.version}"]
        + ["--endpoint", mlserver.url, "-o", "json"],
        env,
    )
    assert got.exit_code == 1 and got.stdout == ""
    assert "Traceback" not in got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("replaying "), got.stderr  # header + error
    error = lines[1]
    path = f"/v2/models/{model.name}/versions/{added.version}/infer"
    assert error.startswith(f"error: v2 endpoint POST {mlserver.url}{path}: HTTP 404"), error
    assert f"version {added.version}" in error and model.name in error, error
