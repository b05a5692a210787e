"""An evaluation written onto its version in MLflow: a run of the experiment ``aml-robustness``
(tags naming the model, version and artifact; one metric per figure; ``report.json``), then the
version's ``aml.robustness.*`` tags (``RobustnessRecord.signed_tags``), the record and its
signature last.

A failure after the run exists marks it FAILED and leaves the version's tags alone; a failure
among the tags can leave some figure tags new and the record old, never a record without the
run it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from console import model_signing
from console.adapters.mlflow import MlflowRegistry
from console.config import Settings
from console.errors import ConfigError, ConsoleError
from console.robustness import RECORD_TAG, RobustnessRecord
from console.robustness_seal import SIGNATURE_TAG

EXPERIMENT = "aml-robustness"
REPORT = "report.json"
FIGURES = ("adversarial_success_rate", "detector_recall", "queries", "surrogate_agreement")


def metrics_of(record: RobustnessRecord) -> dict[str, float]:
    """Every figure of the record as an MLflow metric (``fgsm.adversarial_success_rate``,
    ``fgsm.by_strength.2.0``, ``extraction.surrogate_agreement``...); what each attack cost is
    in ``report.json`` only (a metric is one call, and the lab's MLflow takes them one by one)."""
    found: dict[str, float] = {
        "clean_accuracy": record.clean_accuracy,
        "detector_fpr": record.detector_fpr,
    }
    if (worst := record.max_adversarial_success) is not None:
        found["max_adversarial_success"] = worst
    for name, figures in record.attacks.items():
        for key in FIGURES:
            value = getattr(figures, key)
            if value is not None:
                found[f"{name}.{key}"] = float(value)
        for strength, rate in figures.by_strength.items():
            found[f"{name}.by_strength.{strength}"] = rate
    return found


async def record_evaluation(
    registry: MlflowRegistry,
    record: RobustnessRecord,
    report: dict[str, Any],
    signing_key: bytes | None,
) -> RobustnessRecord:
    """The record as written (with its ``run_id``)."""
    experiment = await _experiment(registry)
    now = _ms()
    run = await registry.create_run(
        experiment,
        f"{record.model}-v{record.version}",
        now,
        tags={
            "aml.model": record.model,
            "aml.version": record.version,
            "aml.onnx_sha256": record.onnx_sha256,
            "mlflow.note.content": f"aml-console eval of {record.model} version {record.version}",
        },
    )
    record = record.model_copy(update={"run_id": run.run_id})
    try:
        # Concurrently: one call per metric (the adapter has no batch call), ~50 ms each.
        await asyncio.gather(
            *(registry.log_metric(run.run_id, k, v, now) for k, v in metrics_of(record).items())
        )
        body = {**report, "run_id": run.run_id}
        content = json.dumps(body, indent=2, sort_keys=True).encode()
        await registry.log_artifact(f"{run.artifact_uri.rstrip('/')}/{REPORT}", content)
        await registry.update_run(run.run_id, "FINISHED", _ms())
    except ConsoleError:
        with contextlib.suppress(ConsoleError):  # the first failure is the one to report
            await registry.update_run(run.run_id, "FAILED", _ms())
        raise
    tags = record.signed_tags(signing_key)
    last = {k: tags.pop(k) for k in (RECORD_TAG, SIGNATURE_TAG) if k in tags}
    await asyncio.gather(
        *(registry.set_version_tags(record.model, record.version, {k: v}) for k, v in tags.items())
    )
    # The record (what is read back) only once every figure tag is in place.
    await registry.set_version_tags(record.model, record.version, last)
    return record


async def _experiment(registry: MlflowRegistry) -> str:
    found = await registry.get_experiment_id(EXPERIMENT)
    if found is None:
        found = await registry.create_experiment(EXPERIMENT)
    if found is None:  # created by someone else in between
        found = await registry.get_experiment_id(EXPERIMENT)
    if found is None:
        raise ConsoleError(f"mlflow: experiment {EXPERIMENT!r} can be neither found nor made")
    return found


def _ms() -> int:
    return int(time.time() * 1000)


def signing_key(settings: Settings) -> bytes | None:
    """The artifact signing private key (PEM) that signs the record: ``[models] signing_key``,
    else the lab's ``<run_dir>/secrets/model-signing.key``, when that file exists. None: the
    record goes unsigned, and only a context that trusts no key accepts it."""
    path = model_signing.private_key_path(settings)
    if not path.is_file():
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"signing key {path}: {exc.strerror or exc}") from None


def trusted_keys(settings: Settings) -> tuple[bytes, ...]:
    """The public keys (PEM) a record must be signed by: those that verify artifacts
    (``model_signing.signing_policy``); empty: records are not checked for a signature."""
    keys = []
    for path in model_signing.signing_policy(settings).public_keys:
        try:
            keys.append(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigError(f"signing public key {path}: {exc.strerror or exc}") from None
    return tuple(keys)
