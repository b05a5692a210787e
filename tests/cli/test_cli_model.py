"""`aml-console model sign|verify|keygen` against the session lab's real MLflow: a version
registered by another pipeline (unsigned) is refused until `model sign` uploads its signature;
a swapped artifact with a rewritten sha256 tag is refused `bad_signature`; read-only mode signs
nothing; `keygen` makes a 0600 private key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from signing_support import (
    artifacts_of,
    lab_public_keys,
    register_unsigned,
    signature_of,
    swap_artifact,
)
from support import LabHandle, run_cli

from console.lab.seed import SeededModel


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_sign_then_verify_a_version_another_pipeline_registered(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    model = seeded_model.name
    logreg, _ = artifacts_of(lab, seeded_model)
    version = register_unsigned(lab, model, logreg)

    refused = run_cli(["model", "verify", model, "--version", version], lab.env)
    assert refused.returncode == 1 and refused.stdout == ""
    line = _one_line(refused.stderr)
    assert f"{model} version {version} refused (unsigned)" in line
    doc = run_cli(["model", "verify", model, "--version", version, "-o", "json"], lab.env)
    assert doc.returncode == 1
    assert json.loads(doc.stdout) | {"message": ""} == {
        "model": model,
        "version": version,
        "verified": False,
        "reason": "unsigned",
        "message": "",
    }

    ro = run_cli(["--read-only", "model", "sign", model, "--version", version], lab.env)
    assert ro.returncode != 0 and "read-only" in _one_line(ro.stderr)
    assert signature_of(lab, model, version) is None

    signed = run_cli(["model", "sign", model, "--version", version, "-o", "json"], lab.env)
    assert signed.returncode == 0, signed.stderr
    result = json.loads(signed.stdout)
    assert result["signature"].endswith("/model.onnx.sig") and result["version"] == version
    assert "PRIVATE KEY" not in signed.stdout + signed.stderr
    assert signature_of(lab, model, version) is not None

    ok = run_cli(["model", "verify", model, "--version", version, "-o", "json"], lab.env)
    assert ok.returncode == 0, ok.stderr
    verified = json.loads(ok.stdout)
    assert verified["verified"] is True and verified["key"] == str(lab_public_keys(lab)[0])
    table = run_cli(["model", "verify", model, "--version", version], lab.env)
    assert table.returncode == 0 and "signature verified" in table.stdout


def test_a_swapped_artifact_with_its_tag_rewritten_is_bad_signature(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    model = seeded_model.name
    logreg, mlp = artifacts_of(lab, seeded_model)
    version = register_unsigned(lab, model, logreg)
    assert run_cli(["model", "sign", model, "--version", version], lab.env).returncode == 0
    swap_artifact(lab, model, version, mlp)

    got = run_cli(["model", "verify", model, "--version", version], lab.env)
    assert got.returncode == 1
    line = _one_line(got.stderr)
    assert f"{model} version {version} refused (bad_signature)" in line
    assert "not the ones signed" in line
    # The seed's own versions verify with the lab's key.
    seed = run_cli(["model", "verify", model, "--version", "2"], lab.env)
    assert seed.returncode == 0, seed.stderr


def test_verify_with_another_key_and_keygen(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    key = tmp_path / "keys" / "team.key"
    made = run_cli(["model", "keygen", "--key", str(key)], lab.env)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = key.with_suffix(".pub")
    assert b"PUBLIC KEY" in public.read_bytes() and "PRIVATE" not in made.stdout
    again = run_cli(["model", "keygen", "--key", str(key)], lab.env)
    assert again.returncode != 0 and "exists already" in _one_line(again.stderr)

    model = seeded_model.name
    scratch = tmp_path / "tmp"  # where model-signing's private working dirs go
    scratch.mkdir()
    env = {**lab.env, "TMPDIR": str(scratch)}
    other = run_cli(["model", "verify", model, "--version", "1", "--key", str(public)], env)
    assert other.returncode == 1
    line = _one_line(other.stderr)
    assert "(bad_signature)" in line and "signed by another key" in line
    both = ["--key", str(public), "--key", str(lab_public_keys(lab)[0])]
    assert run_cli(["model", "verify", model, "--version", "1", *both], env).returncode == 0
    assert list(scratch.iterdir()) == []  # removed after each check
    missing = run_cli(["model", "verify", model, "--version", "99"], lab.env)
    assert missing.returncode != 0 and "no version '99'" in _one_line(missing.stderr)


def test_lab_up_signs_the_unsigned_seed_versions_of_an_older_lab(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    """An MLflow seeded before signing: the lab's model has a version on a seed run without a
    ``.sig``. `lab up` signs it (its bytes still match the seed's sha256) and nothing else: not
    a version outside the seed runs, nor (the same pass, on another model) a seed-run version
    whose bytes no longer match its tag."""
    import asyncio
    import hashlib
    import uuid

    from signing_support import lab_private_key, register_unsigned

    from console.adapters.mlflow import MlflowRegistry
    from console.lab.seed_runs import (
        SEED_EXPERIMENT,
        ensure_experiment,
        log_onnx_run,
        sign_unsigned_seed_artifacts,
    )
    from console.lab.seed_train import TrainedModel

    logreg, mlp = artifacts_of(lab, seeded_model)
    name, other = (f"digits-legacy-{uuid.uuid4().hex[:10]}" for _ in range(2))

    async def older_lab(model: str, onnx: bytes, sha: str) -> str:
        registry = MlflowRegistry.connect(lab.settings.mlflow.url, 30.0)
        try:
            await registry.create_model(model)
            seed_exp = await ensure_experiment(registry, SEED_EXPERIMENT)
            # A kind of its own: the seed's lookups by kind never pick this run up.
            trained = TrainedModel(f"legacy-{uuid.uuid4().hex[:6]}", onnx, 0.9)
            run = await log_onnx_run(registry, seed_exp, trained)
            tags = {"onnx_sha256": sha, "model_kind": "logreg", "framework": "onnx"}
            created = await registry.create_version(model, run.source, run.run_id, tags=tags)
            await registry.set_alias(model, "champion", created.version)
            return created.version
        finally:
            await registry.aclose()

    old = asyncio.run(older_lab(name, logreg, hashlib.sha256(logreg).hexdigest()))
    outside = register_unsigned(lab, name, mlp)
    assert signature_of(lab, name, old) is None

    env = {**lab.env, "CONSOLE_LAB__SEED_MODEL": name}
    up = run_cli(["lab", "up", "--services", "mlflow"], env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert signature_of(lab, name, old) is not None
    assert run_cli(["model", "verify", name, "--version", old], lab.env).returncode == 0
    assert signature_of(lab, name, outside) is None
    got = run_cli(["model", "verify", name, "--version", outside], lab.env)
    assert got.returncode == 1 and "(unsigned)" in _one_line(got.stderr)

    changed = asyncio.run(older_lab(other, mlp, "0" * 64))

    async def migrate() -> list[str]:
        registry = MlflowRegistry.connect(lab.settings.mlflow.url, 30.0)
        try:
            return await sign_unsigned_seed_artifacts(registry, other, [], lab_private_key(lab))
        finally:
            await registry.aclose()

    assert asyncio.run(migrate()) == []
    assert signature_of(lab, other, changed) is None
