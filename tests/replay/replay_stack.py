"""Replay fixtures: a freshly seeded model in the session lab's real MLflow (champion 2 the MLP,
previous 1 the logistic regression, real ONNX artifacts), a sample store of real digits and
FGSM-perturbed ones, onnxruntime sessions of the same artifacts for direct comparison, and the
project's own V2 gateway started by the launcher.

MLServer is not used: `pip install --dry-run mlserver` (1.7.1) would downgrade fastapi
0.165 -> 0.115, starlette 1.10 -> 0.46 and protobuf 7.36 -> 6.33 (docs/architecture.md, Replay).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from replay_support import digits, fgsm, record, write_store
from support import REPO, LabHandle, cli_env, free_port, unavailable

from console.config import Settings, load_settings
from console.errors import ConsoleError
from console.lab.seed import SeededModel, download_artifact, seed_model

CLEAN, ADVERSARIAL, UNLABELLED, OLD = 60, 40, 10, 5


def _seed(lab: LabHandle, prefix: str) -> SeededModel:
    try:
        return seed_model(lab.settings.mlflow.url, f"{prefix}-{uuid.uuid4().hex[:12]}")
    except ConsoleError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="module")
def replay_model(lab: LabHandle) -> SeededModel:
    return _seed(lab, "replay")


def sessions_of(lab: LabHandle, model: SeededModel) -> dict[str, Any]:
    """onnxruntime sessions of the model's versions, artifacts checked against their tags."""
    import onnxruntime

    out = {}
    for v in model.versions:
        onnx = download_artifact(lab.settings.mlflow.url, model.name, v.version)
        assert hashlib.sha256(onnx).hexdigest() == v.sha256
        out[v.version] = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    return out


@pytest.fixture(scope="module")
def sessions(lab: LabHandle, replay_model: SeededModel) -> dict[str, Any]:
    return sessions_of(lab, replay_model)


@dataclass
class Store:
    root: Path
    model: str
    records: list[dict[str, Any]] = field(default_factory=list)

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {r["sample_id"]: r for r in self.records}

    def inputs(self, ids: list[str]) -> np.ndarray:
        found = self.by_id()
        return np.array([found[i]["input"] for i in ids], dtype=np.float32)


def fill_store(root: Path, model: str) -> Store:
    """``CLEAN`` held-out digits from alice (unflagged, unlabelled, as the gateway samples
    them), ``ADVERSARIAL`` FGSM digits from mallory-2 (flagged, labelled), ``UNLABELLED``
    flagged FGSM digits from mallory-3 without labels, and ``OLD`` labelled adversarial ones
    from mallory-2 three hours ago."""
    data = digits()
    now = datetime.now(UTC)
    x, y = data.x_test, data.y_test
    adv = fgsm(data, x, y)
    store = Store(root, model)
    n = 0
    for i in range(CLEAN):
        store.records.append(record(n, now - timedelta(seconds=10 + n), x[i], model=model))
        n += 1
    for i in range(CLEAN, CLEAN + ADVERSARIAL):
        store.records.append(
            record(
                n,
                now - timedelta(seconds=10 + n),
                adv[i],
                model=model,
                client="mallory-2",
                flagged=True,
                score=0.5 + (i % 5) / 10,
                label=int(y[i]),
            )
        )
        n += 1
    for i in range(CLEAN + ADVERSARIAL, CLEAN + ADVERSARIAL + UNLABELLED):
        store.records.append(
            record(
                n, now - timedelta(seconds=10 + n), adv[i], model=model,
                client="mallory-3", flagged=True, score=0.9,
            )
        )  # fmt: skip
        n += 1
    for i in range(200, 200 + OLD):
        store.records.append(
            record(
                n, now - timedelta(hours=3, seconds=n), adv[i], model=model,
                client="mallory-2", flagged=True, score=0.8, label=int(y[i]),
            )
        )  # fmt: skip
        n += 1
    write_store(root, store.records)
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, replay_model: SeededModel) -> Store:
    return fill_store(tmp_path_factory.mktemp("replay-store"), replay_model.name)


@pytest.fixture
def env(lab: LabHandle, store: Store) -> dict[str, str]:
    """Environment of a CLI run against the session lab and the store."""
    return {**cli_env(lab.config_path), "CONSOLE_SAMPLES__PATH": str(store.root)}


@dataclass(frozen=True)
class V2Gateway:
    settings: Settings
    model: SeededModel
    store: Store

    @property
    def url(self) -> str:
        return self.settings.gateway.url


def gateway_settings(lab: LabHandle, run_dir: Path, model: str) -> Settings:
    """Settings of a gateway of its own (port, run dir, Redis prefix, sample store) serving
    ``model``. The environment is set only while they load: nothing leaks to other tests."""
    env = {
        "CONSOLE_CONFIG": str(lab.config_path),
        "CONSOLE_RUN_DIR": str(run_dir),
        "CONSOLE_REDIS__KEY_PREFIX": f"rp{secrets.token_hex(4)}",
        "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": "replay-test-audit-key-" + "x" * 16,
        "CONSOLE_RUNBOOK_DIRS": json.dumps([str(REPO / "runbooks")]),
        "CONSOLE_TRACES__PATH": str(run_dir / "traces"),
        "CONSOLE_SAMPLES__PATH": str(run_dir / "gateway-samples"),
        "CONSOLE_GATEWAY__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_GATEWAY__MODELS": json.dumps([model]),
        "CONSOLE_GATEWAY__ALIAS_POLL_S": "0.3",
        "CONSOLE_GATEWAY__SAMPLE_FRACTION": "0",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        return load_settings()


@pytest.fixture(scope="module")
def v2_gateway(lab: LabHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[V2Gateway]:
    """The project's V2 gateway (a uvicorn process started by the launcher) serving the
    champion of a model of its own, and a store of samples of that model."""
    from console.lab import services

    model = _seed(lab, "replay-gw")
    base = tmp_path_factory.mktemp("replay-gw")
    settings = gateway_settings(lab, base / "run", model.name)
    try:
        services.up(settings, ["gateway"], seed=False)
    except ConsoleError as exc:
        unavailable(f"gateway: {exc}")
    try:
        yield V2Gateway(settings, model, fill_store(base / "store", model.name))
    finally:
        services.down(settings, ["gateway"])
