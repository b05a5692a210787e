"""Helpers for the signed-artifact tests: versions registered signed or unsigned in the session
lab's real MLflow, and the tampering anyone with registry write access could do (replace a
version's artifact and rewrite its ``onnx_sha256`` tag to match).

Import as ``from signing_support import ...`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from support import LabHandle

from console.adapters.mlflow import MlflowRegistry
from console.lab.seed import SeededModel, download_artifact, register_onnx_version
from console.lab.seed_runs import ensure_experiment, log_onnx_run
from console.lab.seed_train import TrainedModel
from console.model_signing import private_key_path, signing_policy

T = TypeVar("T")


def lab_private_key(lab: LabHandle) -> Path:
    """The session lab's signing key (made by its seeding, named by the test config)."""
    key = private_key_path(lab.settings)
    assert key.is_file(), f"the lab's seeding made no signing key at {key}"
    return key


def lab_public_keys(lab: LabHandle) -> tuple[Path, ...]:
    keys = signing_policy(lab.settings).public_keys
    assert keys and all(k.is_file() for k in keys), keys
    return keys


def on_registry(lab: LabHandle, use: Callable[[MlflowRegistry], Awaitable[T]]) -> T:
    """``use`` a registry client on the session lab's MLflow (from sync or async tests)."""
    return _on_registry(lab.settings.mlflow.url, use)


def _on_registry(url: str, use: Callable[[MlflowRegistry], Awaitable[T]]) -> T:
    async def run() -> T:
        registry = MlflowRegistry.connect(url, 30.0)
        try:
            return await use(registry)
        finally:
            await registry.aclose()

    with ThreadPoolExecutor(max_workers=1) as pool:  # works from sync and async tests alike
        return pool.submit(asyncio.run, run()).result()


def artifacts_of(lab: LabHandle, model: SeededModel) -> tuple[bytes, bytes]:
    """The bytes of versions 1 (logistic regression) and 2 (MLP): two different real models."""
    url = lab.settings.mlflow.url
    return download_artifact(url, model.name, "1"), download_artifact(url, model.name, "2")


def register_signed(lab: LabHandle, model: str, onnx: bytes, kind: str = "logreg") -> str:
    """A new version on an artifact of its own run, signed with the lab's key."""
    return register_onnx_version(
        lab.settings.mlflow.url,
        model,
        onnx,
        kind=kind,
        accuracy=0.9,
        description="signed by the signing tests",
        experiment="aml-test-signing",
        signing_key=lab_private_key(lab),
    ).version


def register_unsigned(lab: LabHandle, model: str, onnx: bytes) -> str:
    """A new version on an artifact of its own run with the right sha256 tag and no
    signature: what a pipeline that does not sign registers."""

    async def register(registry: MlflowRegistry) -> str:
        experiment_id = await ensure_experiment(registry, "aml-test-signing")
        artifact = await log_onnx_run(registry, experiment_id, TrainedModel("logreg", onnx, 0.9))
        created = await registry.create_version(
            model,
            artifact.source,
            artifact.run_id,
            "unsigned, by the signing tests",
            tags={"onnx_sha256": artifact.sha256, "framework": "onnx"},
        )
        return created.version

    return _on_registry(lab.settings.mlflow.url, register)


def swap_artifact(lab: LabHandle, model: str, version: str, onnx: bytes) -> str:
    """Replace the version's artifact with ``onnx`` and its ``onnx_sha256`` tag with the new
    bytes' hash, leaving its signature as it was. The new sha256."""
    sha = hashlib.sha256(onnx).hexdigest()

    async def swap(registry: MlflowRegistry) -> None:
        await registry.log_artifact(await registry.artifact_uri(model, version), onnx)
        await registry.set_version_tags(model, version, {"onnx_sha256": sha})

    _on_registry(lab.settings.mlflow.url, swap)
    assert download_artifact(lab.settings.mlflow.url, model, version) == onnx
    return sha


def set_champion(lab: LabHandle, model: str, version: str) -> None:
    async def move(registry: MlflowRegistry) -> None:
        await registry.set_alias(model, "champion", version)

    _on_registry(lab.settings.mlflow.url, move)


def signature_of(lab: LabHandle, model: str, version: str) -> bytes | None:
    async def read(registry: MlflowRegistry) -> bytes | None:
        return await registry.download_sibling(model, version, ".sig", 1024 * 1024)

    return _on_registry(lab.settings.mlflow.url, read)
