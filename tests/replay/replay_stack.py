"""Replay fixtures: a freshly seeded model in the session lab's real MLflow (champion 2 the MLP,
previous 1 the logistic regression, real ONNX artifacts), a sample store of real digits and
FGSM-perturbed ones, onnxruntime sessions of the same artifacts for direct comparison, and the
project's own V2 gateway started by the launcher, and a real third-party V2 server: MLServer,
serving versions 1 and 2 of the model from their registry artifacts.

MLServer runs from a virtualenv of its own (``.aml-venvs/mlserver``, made by ``.ci/install``):
installed beside the console it would downgrade fastapi 0.165 -> 0.115, starlette 1.10 -> 0.46
and protobuf 7.36 -> 6.33 (docs/architecture.md, Replay). Its runtime, ``mlserver_runtime/``,
imports MLServer, onnxruntime and numpy only, never the console.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from replay_support import digits, fgsm, record, write_store
from support import REPO, LabHandle, cli_env, free_port, unavailable

from console.config import Settings, load_settings
from console.errors import ConsoleError
from console.lab.seed import SeededModel, describe_model, download_artifact, seed_model

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
                n,
                now - timedelta(seconds=10 + n),
                adv[i],
                model=model,
                client="mallory-3",
                flagged=True,
                score=0.9,
            )
        )
        n += 1
    for i in range(200, 200 + OLD):
        store.records.append(
            record(
                n,
                now - timedelta(hours=3, seconds=n),
                adv[i],
                model=model,
                client="mallory-2",
                flagged=True,
                score=0.8,
                label=int(y[i]),
            )
        )
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
        "CONSOLE_MODELS__SERVED": json.dumps([model]),
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


MLSERVER_VENV = REPO / ".aml-venvs" / "mlserver"
MLSERVER_RUNTIME = Path(__file__).resolve().parent / "mlserver_runtime"
MLSERVER_INSTALL = (
    "bash .ci/install (or: python3 -m venv .aml-venvs/mlserver && "
    ".aml-venvs/mlserver/bin/python -m pip install 'mlserver>=1.7,<1.8' onnxruntime numpy)"
)
MLSERVER_VERSIONS = ("1", "2")
MLSERVER_START_S = 90.0
"""Bound on MLServer's start (~5 s alone; more with the other xdist worker busy)."""


@dataclass(frozen=True)
class MLServer:
    """A running MLServer serving ``versions`` of ``model`` (their registry artifacts)."""

    url: str
    model: SeededModel
    versions: tuple[str, ...]
    ports: dict[str, int]
    """``http``, ``grpc`` and ``metrics``, all on 127.0.0.1."""
    repository: Path
    log: Path


def write_mlserver_repository(
    root: Path, name: str, artifacts: dict[str, bytes], ports: dict[str, int]
) -> None:
    """An MLServer model repository: ``settings.json`` (loopback, the given ports, no parallel
    workers) and ``<name>/<version>/`` per version (Triton's layout, which MLServer accepts
    without a warning) with its ONNX file and model-settings.json."""
    root.mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": ports["http"],
        "grpc_port": ports["grpc"],
        "metrics_port": ports["metrics"],
        "parallel_workers": 0,
        "load_models_at_startup": True,
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    for version, onnx in artifacts.items():
        folder = root / name / version
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(onnx)
        model_settings = {
            "name": name,
            "implementation": "onnx_contract.OnnxContract",
            "parameters": {"version": version, "uri": str(folder / "model.onnx")},
        }
        (folder / "model-settings.json").write_text(
            json.dumps(model_settings, indent=2), encoding="utf-8"
        )


def mlserver_env(ports: dict[str, int]) -> dict[str, str]:
    """MLServer's environment: the machine's, less any MLSERVER_* setting, virtualenv or
    PYTHONPATH of the caller's, plus the runtime's folder and the loopback ports (settings.json
    says the same)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLSERVER_", "CONSOLE_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(
        PYTHONPATH=str(MLSERVER_RUNTIME),
        MLSERVER_HOST="127.0.0.1",
        MLSERVER_HTTP_PORT=str(ports["http"]),
        MLSERVER_GRPC_PORT=str(ports["grpc"]),
        MLSERVER_METRICS_PORT=str(ports["metrics"]),
        MLSERVER_PARALLEL_WORKERS="0",
    )
    return env


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def _wait_ready(proc: subprocess.Popen[bytes], url: str, paths: list[str], log: Path) -> None:
    """Every path answers 200 within MLSERVER_START_S, or unavailable (log tail shown)."""
    deadline = time.monotonic() + MLSERVER_START_S
    pending = list(paths)
    with httpx.Client(base_url=url, trust_env=False, timeout=2) as http:
        while pending:
            if proc.poll() is not None:
                unavailable(
                    f"MLServer exited with {proc.returncode} before it was ready; "
                    f"log {log}:\n{_log_tail(log)}"
                )
            if time.monotonic() > deadline:
                unavailable(
                    f"MLServer not ready after {MLSERVER_START_S:.0f} s ({pending[0]} not 200); "
                    f"log {log}:\n{_log_tail(log)}"
                )
            try:
                if http.get(pending[0]).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.TransportError:
                pass
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to MLServer's process group, SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def mlserver(
    lab: LabHandle, replay_model: SeededModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MLServer]:
    """MLServer (``.aml-venvs/mlserver``) serving versions 1 and 2 of ``replay_model``: their
    ONNX artifacts downloaded from the registry and checked against their ``onnx_sha256``
    tags, the ONNX runtime of ``mlserver_runtime/``; HTTP, gRPC and metrics on free loopback
    ports; its process group killed at the end."""
    binary = MLSERVER_VENV / "bin" / "mlserver"
    if not os.access(binary, os.X_OK):
        unavailable(
            f"MLServer's virtualenv is missing ({binary}): install it with {MLSERVER_INSTALL}"
        )
    mlflow = lab.settings.mlflow.url
    registered = describe_model(mlflow, replay_model.name)
    assert registered is not None, replay_model.name
    artifacts = {}
    for version in MLSERVER_VERSIONS:
        onnx = download_artifact(mlflow, replay_model.name, version)
        tag = registered.version(version).sha256
        assert tag and hashlib.sha256(onnx).hexdigest() == tag, f"version {version}: sha256"
        artifacts[version] = onnx
    base = tmp_path_factory.mktemp("mlserver")
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    repository, log = base / "models", base / "mlserver.log"
    write_mlserver_repository(repository, replay_model.name, artifacts, ports)
    url = f"http://127.0.0.1:{ports['http']}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(binary), "start", str(repository)],
            cwd=base,
            env=mlserver_env(ports),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        name = replay_model.name
        _wait_ready(
            proc,
            url,
            ["/v2/health/ready"]
            + [f"/v2/models/{name}/versions/{v}/ready" for v in MLSERVER_VERSIONS],
            log,
        )
        yield MLServer(url, replay_model, MLSERVER_VERSIONS, ports, repository, log)
    finally:
        _stop(proc)
