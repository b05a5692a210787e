"""The tracking runs that hold the seed's ONNX artifacts, which model versions point at.

The seed's artifacts are logged once per MLflow server, to runs of the experiment
``aml-lab-seed``, and found again by their tags: re-seeding (a second ``lab up``, every
``seed_model`` of the tests) registers versions without training again. With a signing key,
each artifact's signature (``model.onnx.sig``, ``console.model_signing``) is logged beside it,
and a run is found again only if its artifact's signature verifies with that key's ``.pub``:
anyone can log a run with the seed's tags.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console import model_signing
from console.adapters.mlflow import MAX_ARTIFACT_BYTES, MlflowRegistry
from console.adapters.mlflow_answers import sibling_uri
from console.errors import ArtifactRefused, LabError
from console.lab.seed_provenance import SeedProvenance, record
from console.lab.seed_train import KINDS, TrainedModel, train_seed_models

SEED_EXPERIMENT = "aml-lab-seed"
SEED_FORMAT = "1"
"""Bump when training or export changes, so runs logged by older code are not reused."""
ARTIFACT_PATH = "model.onnx"
_RUNS_LOOKED_AT = 20
"""Newest runs per kind ``_find_seed_run`` checks for one whose signature verifies."""
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoggedArtifact:
    """An ONNX file logged to a finished run."""

    kind: str
    run_id: str
    source: str
    """The artifact's URI (``mlflow-artifacts:/<exp>/<run>/artifacts/model.onnx``)."""
    sha256: str
    accuracy: float
    ours: bool = False
    """``sha256`` is of bytes this lab made (logged now, or signed by its key): it may vouch
    for them (``SeedProvenance``). False for a run found without a key to check it by."""


async def find_or_log_seed_artifacts(
    registry: MlflowRegistry,
    signing_key: Path | None = None,
    manifest: Path | None = None,
    experiment: str = SEED_EXPERIMENT,
) -> list[LoggedArtifact]:
    """The seed's artifacts on this server, one per kind in ``KINDS`` order: the newest logged
    ones (with ``signing_key``: the newest whose signature verifies with its ``.pub``), else
    (any kind missing) all of them trained and logged anew, signed with ``signing_key`` and
    recorded in ``manifest``."""
    experiment_id = await ensure_experiment(registry, experiment)
    public = None if signing_key is None else model_signing.public_key_path(signing_key)
    if public is not None and not public.is_file():
        public = None  # nothing to check by (ensure_key_pair makes the pair whole)
    found = [await _find_seed_run(registry, experiment_id, kind, public) for kind in KINDS]
    logged = [artifact for artifact in found if artifact is not None]
    if len(logged) == len(KINDS):
        return logged
    trained = train_seed_models()
    return [await log_onnx_run(registry, experiment_id, t, signing_key, manifest) for t in trained]


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
    manifest: Path | None = None,
) -> LoggedArtifact:
    """A new run of ``experiment_id`` holding ``trained.onnx``, tagged so the seed finds it,
    and its signature by ``signing_key`` beside it (none without a key); its sha256 added to
    ``manifest`` (``seed_provenance``) first."""
    sha = hashlib.sha256(trained.onnx).hexdigest()
    if manifest is not None:
        record(manifest, sha, trained.kind)
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
        await registry.log_artifact(sibling_uri(source, model_signing.SIGNATURE_SUFFIX), signature)
    await registry.log_metric(run.run_id, "accuracy", trained.accuracy, now_ms)
    # FINISHED last, once the artifact is up: a run interrupted before is never reused.
    await registry.update_run(run.run_id, "FINISHED", int(time.time() * 1000))
    return LoggedArtifact(trained.kind, run.run_id, source, sha, trained.accuracy, ours=True)


async def sign_unsigned_seed_artifacts(
    registry: MlflowRegistry, model: str, signing_key: Path, provenance: SeedProvenance
) -> list[str]:
    """Sign what the seed logged before signatures existed: the artifacts of ``model``'s
    versions in the seed experiment that have no ``.sig`` beside them and whose bytes are the
    lab's own (``provenance``: not the registry's tags, which anyone may write). Anything else
    stays unsigned, so it is refused. The URIs signed now."""
    experiment_id = await registry.get_experiment_id(SEED_EXPERIMENT)
    if experiment_id is None:
        return []
    prefix = f"mlflow-artifacts:/{experiment_id}/"
    versions = await registry.list_versions(model, max_results=1000)
    sources = dict.fromkeys(v.source for v in versions if v.source.startswith(prefix))
    signed = []
    for uri in sources:
        try:
            sig_uri = sibling_uri(uri, model_signing.SIGNATURE_SUFFIX)
            limit = model_signing.MAX_SIGNATURE_BYTES
            if await registry.download_uri(sig_uri, limit, missing_ok=True) is not None:
                continue
            onnx = await registry.download_uri(uri, MAX_ARTIFACT_BYTES)
        except ArtifactRefused as exc:
            log.warning("lab: seed artifact %r left unsigned: %s", uri[:200], exc)
            continue
        if onnx is None or not provenance.ours(onnx):
            log.warning("lab: %r left unsigned: not an artifact this lab made", uri[:200])
            continue
        await registry.log_artifact(sig_uri, model_signing.sign(onnx, signing_key))
        signed.append(uri)
    return signed


async def _find_seed_run(
    registry: MlflowRegistry, experiment_id: str, kind: str, public_key: Path | None
) -> LoggedArtifact | None:
    """The newest finished seed run of ``kind``; with ``public_key``, the newest whose
    artifact's signature verifies with it (its sha256 then that of the bytes, not a tag)."""
    runs = await registry.search_runs(
        [experiment_id],
        f"tags.aml_seed_kind = '{kind}' and tags.aml_seed_format = '{SEED_FORMAT}'"
        " and attributes.status = 'FINISHED'",
        max_results=1 if public_key is None else _RUNS_LOOKED_AT,
        order_by=["attributes.start_time DESC"],
    )
    for run in runs:
        accuracy = _accuracy(run.tags)
        if "onnx_sha256" not in run.tags or accuracy is None:
            continue
        source = f"{run.artifact_uri}/{ARTIFACT_PATH}"
        if public_key is None:
            return LoggedArtifact(kind, run.run_id, source, run.tags["onnx_sha256"], accuracy)
        sha = await _verified_sha256(registry, run.run_id, source, public_key)
        if sha is not None:
            return LoggedArtifact(kind, run.run_id, source, sha, accuracy, ours=True)
    return None


async def _verified_sha256(
    registry: MlflowRegistry, run_id: str, source: str, public_key: Path
) -> str | None:
    """The sha256 of the artifact ``source`` if its ``.sig`` verifies with ``public_key``."""
    try:
        signature = await registry.download_uri(
            sibling_uri(source, model_signing.SIGNATURE_SUFFIX),
            model_signing.MAX_SIGNATURE_BYTES,
            missing_ok=True,
        )
        if signature is None:
            return None
        onnx = await registry.download_uri(source, MAX_ARTIFACT_BYTES)
        if onnx is None:
            return None
        model_signing.verify("seed run", run_id, onnx, signature, (public_key,))
    except ArtifactRefused:
        return None
    return hashlib.sha256(onnx).hexdigest()


def _accuracy(tags: dict[str, Any]) -> float | None:
    try:
        value = float(tags.get("accuracy", "nan"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


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
