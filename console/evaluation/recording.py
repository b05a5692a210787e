"""An evaluation written onto its version in MLflow: a run of the experiment ``aml-robustness``
(tags naming the model, version and artifact; params epsilon, samples and attacks; one metric
per figure, all in one ``runs/log-batch`` call; ``report.json``), then the
version's ``aml.robustness.*`` tags (``RobustnessRecord.signed_tags``), the record and its
signature last.

A partial evaluation (``measurement_misses`` under the gate) writes the run only. A failure
after the run exists marks it FAILED and leaves the version's tags alone; a failure
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
TAG_CONCURRENCY = 8
"""Version tags in flight at once: the server's pool of request workers, not all of them."""
FIGURES = ("adversarial_success_rate", "detector_recall", "queries", "surrogate_agreement")


def metrics_of(record: RobustnessRecord) -> dict[str, float]:
    """Every figure of the record as an MLflow metric (``fgsm.adversarial_success_rate``,
    ``fgsm.by_strength.2.0``, ``extraction.surrogate_agreement``...), written in one
    ``runs/log-batch`` call; what each attack cost is in ``report.json`` only."""
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


def params_of(record: RobustnessRecord) -> dict[str, str]:
    """How the figures were measured, as the run's params: the gated ``epsilon`` (what the
    Fleet view's trend compares runs on), ``samples`` and the ``attacks``."""
    return {
        "epsilon": f"{record.epsilon:g}",
        "samples": str(record.samples),
        "attacks": ",".join(sorted(record.attacks)),
    }


async def record_evaluation(
    registry: MlflowRegistry,
    record: RobustnessRecord,
    report: dict[str, Any],
    signing_key: bytes | None,
    *,
    version_record: bool = True,
) -> RobustnessRecord:
    """The record as written (with its ``run_id``). ``version_record`` False (a partial
    evaluation): the run, its metrics and report only; the version's tags are left alone."""
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
    body = {**report, "run_id": run.run_id}
    content = json.dumps(body, indent=2, sort_keys=True).encode()
    try:
        # Every metric in one runs/log-batch call (chunked at MLflow's limits), beside the
        # report's upload.
        await asyncio.gather(
            registry.log_batch(run.run_id, metrics_of(record), params_of(record), timestamp_ms=now),
            registry.log_artifact(f"{run.artifact_uri.rstrip('/')}/{REPORT}", content),
        )
        await registry.update_run(run.run_id, "FINISHED", _ms())
    except ConsoleError:
        with contextlib.suppress(ConsoleError):  # the first failure is the one to report
            await registry.update_run(run.run_id, "FAILED", _ms())
        raise
    if not version_record:
        return record
    tags = record.signed_tags(signing_key)
    last = {k: tags.pop(k) for k in (RECORD_TAG, SIGNATURE_TAG) if k in tags}
    await set_tags_bounded(registry, record.model, record.version, tags)
    # The record (what is read back) only once every figure tag is in place: the figure tags'
    # calls have all returned before the first of these starts.
    await registry.set_version_tags(record.model, record.version, last)
    return record


async def set_tags_bounded(
    registry: MlflowRegistry,
    model: str,
    version: str,
    tags: dict[str, str],
    limit: int = TAG_CONCURRENCY,
) -> None:
    """Each tag in its own ``set-tag`` call (the registry has no batch call for version tags),
    at most ``limit`` in flight. Returns once every call has; the first failure raises after
    the calls in flight are done (none is left running behind the caller)."""
    gate = asyncio.Semaphore(limit)

    async def one(key: str, value: str) -> None:
        async with gate:
            await registry.set_version_tags(model, version, {key: value})

    results = await asyncio.gather(*(one(k, v) for k, v in tags.items()), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


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
    model_signing.check_private_key_mode(path)
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
