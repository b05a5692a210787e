"""`lab up`'s signing migration, attacked by someone with registry write access and no key
(the session lab's real MLflow and signing key): an older lab's unsigned seed versions are
signed, an artifact the attacker uploaded into the seed experiment and tagged as a seed version
is not; a run the attacker tags as the seed's never becomes "the seed's artifact"."""

from __future__ import annotations

import asyncio
import hashlib
import stat
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from signing_support import (
    artifacts_of,
    lab_private_key,
    register_unsigned,
    signature_of,
)
from support import LabHandle, run_cli

from console.adapters.mlflow import MlflowRegistry
from console.lab.seed import SeededModel, ensure_seed_model
from console.lab.seed_provenance import (
    MANIFEST_NAME,
    NOT_OURS,
    SeedProvenance,
    graph_name,
    manifest_path,
    same_model,
)
from console.lab.seed_runs import (
    SEED_EXPERIMENT,
    SEED_FORMAT,
    LoggedArtifact,
    ensure_experiment,
    find_or_log_seed_artifacts,
    log_onnx_run,
)
from console.lab.seed_train import TrainedModel

T = TypeVar("T")


def _sha(onnx: bytes) -> str:
    return hashlib.sha256(onnx).hexdigest()


def _relabelled(onnx: bytes) -> bytes:
    """The same model under another random graph name: what the same training exported in
    another process (an older lab's seeding)."""
    name = graph_name(onnx).encode()
    assert onnx.count(name) == 1
    return onnx.replace(name, uuid.uuid4().hex.encode())


def _tampered(onnx: bytes, note: str = "backdoored") -> bytes:
    """The model with its bytes changed (standing in for a backdoored model)."""
    import onnx as onnx_lib

    model = onnx_lib.load_from_string(onnx)
    model.doc_string = f"{note} {uuid.uuid4().hex}"
    return bytes(model.SerializeToString())


def _on_registry(lab: LabHandle, use: Callable[[MlflowRegistry], Awaitable[T]]) -> T:
    async def run() -> T:
        registry = MlflowRegistry.connect(lab.settings.mlflow.url, 30.0)
        try:
            return await use(registry)
        finally:
            await registry.aclose()

    return asyncio.run(run())


def _seed_run_version(lab: LabHandle, model: str, onnx: bytes, **tags: str) -> str:
    """A version of ``model`` on an unsigned artifact in a new run of the seed experiment,
    tagged with the bytes' true sha256 (anyone with registry write access can do this)."""

    async def register(registry: MlflowRegistry) -> str:
        if await registry.get_model(model) is None:
            await registry.create_model(model)
        seed_exp = await ensure_experiment(registry, SEED_EXPERIMENT)
        # A kind of its own: the seed's lookups by kind never pick this run up.
        trained = TrainedModel(f"legacy-{uuid.uuid4().hex[:6]}", onnx, 0.9)
        run = await log_onnx_run(registry, seed_exp, trained)
        version_tags = {"onnx_sha256": run.sha256, "framework": "onnx", **tags}
        created = await registry.create_version(model, run.source, run.run_id, tags=version_tags)
        return created.version

    version = _on_registry(lab, register)
    assert signature_of(lab, model, version) is None
    return version


def _manifest_lines(lab: LabHandle) -> list[str]:
    path = manifest_path(lab_private_key(lab))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path.read_text().splitlines()


def test_lab_up_signs_an_older_labs_seed_versions_and_not_an_attackers(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    logreg, mlp = artifacts_of(lab, seeded_model)
    name = f"digits-legacy-{uuid.uuid4().hex[:10]}"
    older = _relabelled(logreg)  # trained by an older lab: only the graph's name differs
    old = _seed_run_version(lab, name, older, model_kind="logreg", accuracy="0.9689")
    evil = _tampered(mlp)
    attacker = _seed_run_version(lab, name, evil)
    outside = register_unsigned(lab, name, mlp)  # a team's pipeline, outside the seed runs

    env = {**lab.env, "CONSOLE_LAB__SEED_MODEL": name}
    up = run_cli(["lab", "up", "--services", "mlflow"], env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "Traceback" not in up.stderr

    assert signature_of(lab, name, old) is not None
    ok = run_cli(["model", "verify", name, "--version", old], lab.env)
    assert ok.returncode == 0, ok.stderr
    for version in (attacker, outside):
        assert signature_of(lab, name, version) is None, version
        got = run_cli(["model", "verify", name, "--version", version], lab.env)
        assert got.returncode == 1 and "(unsigned)" in got.stderr, got.stderr
    # The verdicts are kept: the next `lab up` does not train again for the same bytes.
    lines = _manifest_lines(lab)
    assert f"{_sha(older)} logreg" in lines
    assert f"{_sha(evil)} {NOT_OURS}" in lines


def test_an_attackers_artifact_tagged_as_a_seed_version_is_not_signed(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    """What `lab up` runs (``ensure_seed_model``), on a model whose versions all look like the
    seed's (source in the seed experiment, true sha256 tag, ``model_kind``, ``accuracy``)."""
    logreg, mlp = artifacts_of(lab, seeded_model)
    name = f"digits-legacy-{uuid.uuid4().hex[:10]}"
    seed_tags = {"model_kind": "mlp", "accuracy": "0.9756", "artifact_path": "model.onnx"}
    copy = _seed_run_version(lab, name, mlp, **seed_tags)  # the lab's own bytes, unsigned
    evil = _seed_run_version(lab, name, _tampered(mlp), **seed_tags)
    # Only the graph's name changed, but not to 32 hex digits: not what training exports.
    name_bytes = graph_name(logreg).encode()
    renamed = logreg.replace(name_bytes, b"Z" * len(name_bytes))
    odd = _seed_run_version(lab, name, renamed, **{**seed_tags, "model_kind": "logreg"})

    settings = lab.settings.model_copy(
        update={"lab": lab.settings.lab.model_copy(update={"seed_model": name})}
    )
    ensure_seed_model(settings)

    assert signature_of(lab, name, copy) is not None
    assert signature_of(lab, name, evil) is None
    assert signature_of(lab, name, odd) is None
    got = run_cli(["model", "verify", name, "--version", evil], lab.env)
    assert got.returncode == 1 and "(unsigned)" in got.stderr, got.stderr


def test_a_run_tagged_as_the_seeds_is_ignored_unless_signed_by_the_lab(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    """A newer (even future-dated) finished run tagged as the seed's logistic regression, with
    an unsigned artifact or one carrying the real run's ``.sig``, is not picked: the seed's
    artifacts stay the lab's signed runs, their sha256 that of their bytes, not of a tag."""
    logreg, _ = artifacts_of(lab, seeded_model)
    key = lab_private_key(lab)
    manifest = tmp_path / "secrets" / MANIFEST_NAME
    experiment = f"aml-test-seedruns-{uuid.uuid4().hex[:10]}"
    evil = _tampered(logreg)

    async def scenario(
        registry: MlflowRegistry,
    ) -> tuple[list[LoggedArtifact], list[LoggedArtifact]]:
        first = await find_or_log_seed_artifacts(registry, key, manifest, experiment)
        exp = await registry.get_experiment_id(experiment)
        assert exp is not None
        genuine = first[0]
        genuine_sig = await registry.download_uri(genuine.source + ".sig", 1 << 20)
        future = int(time.time() * 1000) + 86_400_000
        for sig in (None, genuine_sig):
            tags = {
                "aml_seed_kind": "logreg",
                "aml_seed_format": SEED_FORMAT,
                "onnx_sha256": _sha(evil),
                "accuracy": "0.99",
            }
            run = await registry.create_run(exp, "seed-logreg", future, tags=tags)
            source = f"{run.artifact_uri}/model.onnx"
            await registry.log_artifact(source, evil)
            if sig is not None:
                await registry.log_artifact(source + ".sig", sig)
            await registry.update_run(run.run_id, "FINISHED", future)
            future += 1
        await registry.log_batch(genuine.run_id, tags={"onnx_sha256": "0" * 64})
        again = await find_or_log_seed_artifacts(registry, key, manifest, experiment)
        return first, again

    first, again = _on_registry(lab, scenario)
    assert all(artifact.ours for artifact in first)
    assert [(a.run_id, a.sha256) for a in again] == [(a.run_id, a.sha256) for a in first]
    # What this lab logged is in its manifest, 0600.
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600
    recorded = {line.split()[0] for line in manifest.read_text().splitlines()}
    assert {a.sha256 for a in first} <= recorded


def test_what_counts_as_the_seeds_bytes(lab: LabHandle, seeded_model: SeededModel) -> None:
    logreg, mlp = artifacts_of(lab, seeded_model)
    name = graph_name(logreg)
    assert same_model(_relabelled(logreg), logreg, name)
    assert not same_model(_tampered(logreg), logreg, name)
    assert not same_model(logreg.replace(name.encode(), b"Z" * 32), logreg, name)
    flipped = bytearray(_relabelled(logreg))
    flipped[-1] ^= 1
    assert not same_model(bytes(flipped), logreg, name)
    assert not same_model(mlp, logreg, name)


def test_the_manifest_vouches_only_when_private(tmp_path: Path) -> None:
    """Bytes recorded in the lab's manifest count as the lab's without training (``train``
    is never called); a manifest others may write counts for nothing."""
    onnx = b"not a seed model, but recorded by this lab"
    manifest = tmp_path / "secrets" / MANIFEST_NAME

    def no_training() -> list[TrainedModel]:
        raise AssertionError("trained although the manifest settles it")

    assert not SeedProvenance([], manifest, train=list).ours(onnx)
    manifest.parent.mkdir(mode=0o700)
    manifest.write_text(f"{_sha(onnx)} logreg\n")
    manifest.chmod(0o600)
    assert SeedProvenance([], manifest, train=no_training).ours(onnx)
    manifest.chmod(0o622)
    assert not SeedProvenance([], manifest, train=list).ours(onnx)
