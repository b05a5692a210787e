"""`aml-console model sign|verify|keygen` against the session lab's real MLflow: a version
registered by another pipeline (unsigned) is refused until `model sign` uploads its signature;
a swapped artifact with a rewritten sha256 tag is refused `bad_signature`; read-only mode signs
nothing; `keygen` makes a 0600 private key. Attacks: a source ending in ``?x=`` or ``#`` (its
``.sig`` would be the artifact itself), wrong key files (named, not blamed on the artifact), a
private key others may read, two first runs making the key pair at once. (`lab up`'s signing
migration: tests/lab/test_signing_migration.py.)"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from signing_support import (
    artifacts_of,
    lab_private_key,
    lab_public_keys,
    on_registry,
    register_unsigned,
    signature_of,
    swap_artifact,
)
from support import LabHandle, run_cli

from console.adapters.mlflow import MlflowRegistry
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


def test_sign_refuses_a_source_with_a_query_or_fragment_and_leaves_the_artifact(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    """``<artifact>?x=`` and ``<artifact>#`` name the artifact file itself at the proxy: their
    ``.sig`` would overwrite it. Refused in one line; the artifact is unchanged."""
    model = seeded_model.name
    logreg, _ = artifacts_of(lab, seeded_model)
    plain = register_unsigned(lab, model, logreg)

    async def tricks(registry: MlflowRegistry) -> tuple[str, list[str]]:
        found = await registry.get_version(model, plain)
        assert found is not None
        made = []
        for suffix in ("?x=", "#"):
            created = await registry.create_version(
                model, found.source + suffix, found.run_id, tags=dict(found.tags)
            )
            made.append(created.version)
        return found.source, made

    source, versions = on_registry(lab, tricks)
    for version in versions:
        signed = run_cli(["model", "sign", model, "--version", version], lab.env)
        assert signed.returncode != 0
        assert "has a query, a fragment or a host" in _one_line(signed.stderr)
        got = run_cli(["model", "verify", model, "--version", version], lab.env)
        assert got.returncode == 1 and "(download_failed)" in _one_line(got.stderr)

    async def artifact(registry: MlflowRegistry) -> bytes | None:
        return await registry.download_uri(source, 1 << 26)

    assert on_registry(lab, artifact) == logreg
    assert signature_of(lab, model, plain) is None


def _public_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _private_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _wrong_keys() -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "secp256k1": ec.generate_private_key(ec.SECP256K1()),
    }


def test_a_wrong_key_file_is_named_not_blamed_on_the_artifact(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    model = seeded_model.name
    lab_key = lab_private_key(lab)
    publics: dict[str, tuple[Path, str]] = {}
    for kind, key in _wrong_keys().items():
        path = tmp_path / f"{kind}.pub"
        path.write_bytes(_public_pem(key))
        publics[kind] = (path, "is not an EC P-256 public key")
    garbage = tmp_path / "garbage.pub"
    garbage.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    publics["garbage"] = (garbage, "cannot be read as a PEM public key")
    # The private key given as the public one: refused, and nothing of it printed.
    publics["private"] = (lab_key, "cannot be read as a PEM public key")
    for kind, (path, why) in publics.items():
        got = run_cli(["model", "verify", model, "--version", "1", "--key", str(path)], lab.env)
        assert got.returncode == 1, kind
        line = _one_line(got.stderr)
        assert "(no_signing_key)" in line and str(path) in line and why in line, (kind, line)
        assert "PRIVATE" not in got.stdout + got.stderr

    logreg, _ = artifacts_of(lab, seeded_model)
    version = register_unsigned(lab, model, logreg)
    for kind, key in _wrong_keys().items():
        path = tmp_path / f"{kind}.key"
        path.write_bytes(_private_pem(key))
        path.chmod(0o600)
        got = run_cli(["model", "sign", model, "--version", version, "--key", str(path)], lab.env)
        line = _one_line(got.stderr)
        assert got.returncode != 0 and "not an EC P-256 key" in line, (kind, line)
        assert "internal error" not in line and str(path) in line
    shared = tmp_path / "shared.key"  # a good key that others may read
    shared.write_bytes(lab_key.read_bytes())
    shared.chmod(0o644)
    got = run_cli(["model", "sign", model, "--version", version, "--key", str(shared)], lab.env)
    assert got.returncode != 0 and "open to other users (mode 0644)" in _one_line(got.stderr)
    assert signature_of(lab, model, version) is None


def test_keygen_never_leaves_a_mismatched_pair(tmp_path: Path) -> None:
    """Two first runs racing (``ensure_key_pair``): one makes the pair, the other uses it; the
    public key beside the private key is always its own."""
    from concurrent.futures import ThreadPoolExecutor

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from console.model_signing import ensure_key_pair, public_key_path

    for attempt in range(5):
        key = tmp_path / f"race{attempt}" / "model-signing.key"
        with ThreadPoolExecutor(max_workers=4) as pool:
            made = list(pool.map(ensure_key_pair, [key] * 4))
        assert made.count(True) == 1, made
        private = load_pem_private_key(key.read_bytes(), password=None)
        assert _public_pem(private) == public_key_path(key).read_bytes()
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
