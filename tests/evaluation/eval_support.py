"""Helpers of the eval tests: the CLI in process (CliRunner), the registry read back over REST,
and the held-out rows an evaluation picks, recomputed here from the documented split."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from typer.testing import CliRunner

from console.cli.main import app

API = "/api/2.0/mlflow"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def invoke(args: Sequence[str], env: Mapping[str, str]) -> CliResult:
    result = CliRunner().invoke(app, list(args), env=dict(env))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)


def version_tags(mlflow_url: str, model: str, version: str) -> dict[str, str]:
    body = httpx.get(
        f"{mlflow_url}{API}/model-versions/get",
        params={"name": model, "version": version},
        timeout=10,
    ).json()
    return {t["key"]: t["value"] for t in body["model_version"].get("tags", [])}


def robustness_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.startswith("aml.robustness.")}


def get_run(mlflow_url: str, run_id: str) -> dict[str, Any]:
    body = httpx.get(f"{mlflow_url}{API}/runs/get", params={"run_id": run_id}, timeout=10)
    return dict(body.json()["run"])


def runs_of(mlflow_url: str, model: str) -> list[dict[str, Any]]:
    """Every run of the experiment ``aml-robustness`` tagged with ``model``."""
    found = httpx.get(
        f"{mlflow_url}{API}/experiments/get-by-name",
        params={"experiment_name": "aml-robustness"},
        timeout=10,
    )
    if found.status_code != 200:
        return []
    experiment = found.json()["experiment"]["experiment_id"]
    body = httpx.post(
        f"{mlflow_url}{API}/runs/search",
        json={"experiment_ids": [experiment], "filter": f"tags.`aml.model` = '{model}'"},
        timeout=10,
    ).json()
    return list(body.get("runs", []))


def read_artifact(mlflow_url: str, artifact_uri: str, path: str) -> bytes:
    prefix = "mlflow-artifacts:/"
    assert artifact_uri.startswith(prefix), artifact_uri
    relative = artifact_uri[len(prefix) :].lstrip("/")
    response = httpx.get(
        f"{mlflow_url}/api/2.0/mlflow-artifacts/artifacts/{relative}/{path}", timeout=10
    )
    response.raise_for_status()
    return response.content


def download_onnx(mlflow_url: str, model: str, version: str) -> bytes:
    body = httpx.get(
        f"{mlflow_url}{API}/model-versions/get-download-uri",
        params={"name": model, "version": version},
        timeout=10,
    ).json()
    return read_artifact(mlflow_url, body["artifact_uri"].rsplit("/", 1)[0], "model.onnx")


def digits_pick(samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows an evaluation of ``samples`` runs on: the lab's split (test 25 %,
    random_state 0, stratified), then ``samples`` of them drawn by ``seed``, in order."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    _, x_test, _, y_test = train_test_split(
        x.astype(np.float32), y, test_size=0.25, random_state=0, stratify=y
    )
    index = np.sort(np.random.default_rng(seed).choice(len(x_test), samples, replace=False))
    return x_test[index], y_test[index]
