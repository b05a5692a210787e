"""The tracking runs that hold the seed's ONNX artifacts, which model versions point at.

The seed's artifacts are logged once per MLflow server, to runs of the experiment
``aml-lab-seed``, and found again by their tags: re-seeding (a second ``lab up``, every
``seed_model`` of the tests) registers versions without training again. With a signing key,
each artifact's signature (``model.onnx.sig``, ``console.model_signing``) is logged beside it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from console import model_signing
from console.adapters.mlflow import MAX_ARTIFACT_BYTES, MlflowRegistry
from console.errors import LabError
from console.lab.seed_train import KINDS, TrainedModel, train_seed_models

SEED_EXPERIMENT = "aml-lab-seed"
SEED_FORMAT = "1"
"""Bump when training or export changes, so runs logged by older code are not reused."""
ARTIFACT_PATH = "model.onnx"


@dataclass(frozen=True)
class LoggedArtifact:
    """An ONNX file logged to a finished run."""

    kind: str
    run_id: str
    source: str
    """The artifact's URI (``mlflow-artifacts:/<exp>/<run>/artifacts/model.onnx``)."""
    sha256: str
    accuracy: float


async def find_or_log_seed_artifacts(
    registry: MlflowRegistry, signing_key: Path | None = None
) -> list[LoggedArtifact]:
    """The seed's artifacts on this server, one per kind in ``KINDS`` order: the newest logged
    ones, else (any kind missing) all of them trained and logged anew (signed with
    ``signing_key``)."""
    experiment_id = await ensure_experiment(registry, SEED_EXPERIMENT)
    found = [await _find_seed_run(registry, experiment_id, kind) for kind in KINDS]
    logged = [artifact for artifact in found if artifact is not None]
    if len(logged) == len(KINDS):
        return logged
    trained = train_seed_models()
    return [await log_onnx_run(registry, experiment_id, t, signing_key) for t in trained]


async def ensure_experiment(registry: MlflowRegistry, name: str) -> str:
    """The id of the experiment ``name``, created if missing."""
    # Twice: another process (an xdist worker, a second `lab up`) may create it between our
    # lookup and our create, which MLflow then refuses as existing.
    for _ in range(2):
        experiment_id = await registry.get_experiment_id(name)
        if experiment_id is not None:
            return experiment_id
        created = await registry.create_experiment(name)
        if created is not None:
            return created
    raise LabError(f"cannot create MLflow experiment {name!r}")


async def log_onnx_run(
    registry: MlflowRegistry,
    experiment_id: str,
    trained: TrainedModel,
    signing_key: Path | None = None,
) -> LoggedArtifact:
    """A new run of ``experiment_id`` holding ``trained.onnx``, tagged so the seed finds it,
    and its signature by ``signing_key`` beside it (none without a key)."""
    sha = hashlib.sha256(trained.onnx).hexdigest()
    now_ms = int(time.time() * 1000)
    run = await registry.create_run(
        experiment_id,
        f"seed-{trained.kind}",
        now_ms,
        tags={
            "aml_seed_kind": trained.kind,
            "aml_seed_format": SEED_FORMAT,
            "onnx_sha256": sha,
            "accuracy": str(trained.accuracy),
        },
    )
    source = f"{run.artifact_uri}/{ARTIFACT_PATH}"
    await registry.log_artifact(source, trained.onnx)
    if signing_key is not None:
        signature = model_signing.sign(trained.onnx, signing_key)
        await registry.log_artifact(source + model_signing.SIGNATURE_SUFFIX, signature)
    await registry.log_metric(run.run_id, "accuracy", trained.accuracy, now_ms)
    # FINISHED last, once the artifact is up: a run interrupted before is never reused.
    await registry.update_run(run.run_id, "FINISHED", int(time.time() * 1000))
    return LoggedArtifact(trained.kind, run.run_id, source, sha, trained.accuracy)


async def sign_unsigned_seed_artifacts(
    registry: MlflowRegistry, model: str, artifacts: list[LoggedArtifact], signing_key: Path
) -> list[str]:
    """Sign what the seed logged before signatures existed: ``artifacts`` and the artifacts of
    ``model``'s versions in the seed experiment, each that has no ``.sig`` beside it and whose
    bytes still match the sha256 the seed recorded (a changed one stays unsigned, so it is
    refused). The URIs signed now."""
    experiment_id = await registry.get_experiment_id(SEED_EXPERIMENT)
    wanted = {artifact.source: artifact.sha256 for artifact in artifacts}
    prefix = f"mlflow-artifacts:/{experiment_id}/"
    for version in await registry.list_versions(model, max_results=1000):
        if experiment_id is not None and version.source.startswith(prefix):
            wanted.setdefault(version.source, version.tags.get("onnx_sha256", ""))
    signed = []
    for uri, sha in wanted.items():
        sig_uri = uri + model_signing.SIGNATURE_SUFFIX
        limit = model_signing.MAX_SIGNATURE_BYTES
        if await registry.download_uri(sig_uri, limit, missing_ok=True) is not None:
            continue
        onnx = await registry.download_uri(uri, MAX_ARTIFACT_BYTES)
        if onnx is None or hashlib.sha256(onnx).hexdigest() != sha:
            continue
        await registry.log_artifact(sig_uri, model_signing.sign(onnx, signing_key))
        signed.append(uri)
    return signed


async def _find_seed_run(
    registry: MlflowRegistry, experiment_id: str, kind: str
) -> LoggedArtifact | None:
    runs = await registry.search_runs(
        [experiment_id],
        f"tags.aml_seed_kind = '{kind}' and tags.aml_seed_format = '{SEED_FORMAT}'"
        " and attributes.status = 'FINISHED'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    if not runs or "onnx_sha256" not in runs[0].tags or "accuracy" not in runs[0].tags:
        return None
    run = runs[0]
    return LoggedArtifact(
        kind=kind,
        run_id=run.run_id,
        source=f"{run.artifact_uri}/{ARTIFACT_PATH}",
        sha256=run.tags["onnx_sha256"],
        accuracy=float(run.tags["accuracy"]),
    )


__all__ = [
    "ARTIFACT_PATH",
    "SEED_EXPERIMENT",
    "SEED_FORMAT",
    "LoggedArtifact",
    "ensure_experiment",
    "find_or_log_seed_artifacts",
    "log_onnx_run",
    "sign_unsigned_seed_artifacts",
]
