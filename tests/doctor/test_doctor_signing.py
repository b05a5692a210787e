"""``aml-console doctor``'s ``signing`` report on the session lab: the keys in force by path and
fingerprint (never their content), or that verification is skipped and why; failing when
signatures are required and no key is configured, when a configured key is unusable, when the
signing key is loose or not one of the keys in force; and whether each served champion carries
a robustness record this context trusts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from doctor_support import by_name, checks, doctor_config, failed_checks, run_doctor
from fleet_support import put_tags, record, settings_of
from support import LabHandle, cli_env, run_cli

from console.lab.seed import SeededModel
from console.model_signing import generate_key_pair


def _fingerprint(public: Path) -> str:
    key = serialization.load_pem_public_key(public.read_bytes())
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()[:32]


def _keys(public: list[Path], private: Path | None = None, required: bool = False) -> str:
    lines = [f"signing_public_keys = {json.dumps([str(p) for p in public])}"]
    if private is not None:
        lines.append(f"signing_key = {json.dumps(str(private))}")
    if required:
        lines.append("signing_required = true")
    return "\n".join(lines)


def run_cli_table(config: Path) -> str:
    done = run_cli(["doctor"], cli_env(config))
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def _body(pem: Path) -> str:
    """A line of a PEM file's base64 body: what must never be printed."""
    return pem.read_text().splitlines()[1]


def test_keys_in_force_are_named_by_path_and_fingerprint_never_content(
    lab: LabHandle, tmp_path: Path
) -> None:
    private = tmp_path / "keys" / "signing.key"
    public = generate_key_pair(private)
    config = doctor_config(tmp_path, models=_keys([public], private))
    result, reports = run_doctor(config)
    signing = by_name(reports)["signing"]
    found = checks(signing)
    assert signing["url"] == str(public)
    assert found["policy"]["ok"]
    assert found["policy"]["detail"] == (
        f"verifies with 1 key(s) from [models] signing_public_keys: "
        f"{public} ({_fingerprint(public)})"
    )
    assert found["signing key"]["ok"]
    assert found["signing key"]["detail"] == f"{private} ({_fingerprint(public)}, 0600)"
    for pem in (private, public):
        assert _body(pem) not in result.stdout + result.stderr

    # The same through the table.
    table = run_cli_table(config)
    assert _fingerprint(public) in table and _body(private) not in table


def test_no_key_skips_verification_and_says_why_unless_signatures_are_required(
    lab: LabHandle, tmp_path: Path
) -> None:
    result, reports = run_doctor(doctor_config(tmp_path / "skip"))
    policy = checks(by_name(reports)["signing"])["policy"]
    assert policy["ok"] and policy["detail"].startswith(
        "signatures not verified: no [models] signing_public_keys and no "
    )
    assert policy["detail"].endswith(": unsigned artifacts are served")
    assert ("signing", "policy") not in failed_checks(reports)

    result, reports = run_doctor(
        doctor_config(tmp_path / "required", models="signing_required = true")
    )
    policy = checks(by_name(reports)["signing"])["policy"]
    assert not policy["ok"] and result.returncode == 1
    assert "signatures are required" in policy["detail"]
    assert "every artifact is refused" in policy["detail"]
    assert "aml-console model keygen" in policy["hint"]


def test_unusable_keys_a_loose_or_foreign_signing_key_fail(lab: LabHandle, tmp_path: Path) -> None:
    ours = generate_key_pair(tmp_path / "ours" / "signing.key")
    other_private = tmp_path / "other" / "signing.key"
    generate_key_pair(other_private)
    missing = tmp_path / "nowhere.pub"
    # A private key configured as a public one, a file that is not there, and a signing key
    # whose public half is not among the keys in force.
    config = doctor_config(
        tmp_path / "bad", models=_keys([ours, other_private, missing], other_private)
    )
    result, reports = run_doctor(config)
    found = checks(by_name(reports)["signing"])
    assert result.returncode == 1
    policy = found["policy"]
    assert not policy["ok"]
    assert f"{other_private}: holds a private key" in policy["detail"]
    assert f"{missing}: No such file or directory" in policy["detail"]
    assert f"{ours} ({_fingerprint(ours)})" in policy["detail"]
    key = found["signing key"]
    assert not key["ok"] and "is not one of the keys in force" in key["detail"]
    assert _body(other_private) not in result.stdout + result.stderr

    other_private.chmod(0o644)
    _, reports = run_doctor(doctor_config(tmp_path / "loose", models=_keys([ours], other_private)))
    key = checks(by_name(reports)["signing"])["signing key"]
    assert not key["ok"] and key["detail"] == f"{other_private} is 0644"
    assert key["hint"].startswith(f"chmod 600 {other_private}")


def test_each_champion_carries_a_trusted_record_or_says_why_not(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    private = tmp_path / "keys" / "signing.key"
    public = generate_key_pair(private)
    config = doctor_config(tmp_path, served=[seeded_model.name], models=_keys([public], private))
    check = f"champion {seeded_model.name}"

    _, reports = run_doctor(config)
    found = checks(by_name(reports)["signing"])[check]
    assert found["ok"] and found["detail"].startswith("version 2: not evaluated")

    settings = settings_of({**lab.env, "CONSOLE_CONFIG": str(config)})
    rec = record(seeded_model, "2", fgsm=0.3)
    put_tags(settings, seeded_model, "2", rec.signed_tags(private.read_bytes()))
    result, reports = run_doctor(config)
    found = checks(by_name(reports)["signing"])[check]
    assert found["ok"], found
    assert found["detail"] == (
        f"version 2: passes the gate; record signed (evaluated {rec.evaluated_at})"
    )

    # Rewritten without a signature (anyone who can write tags could): the signature left on
    # the version is the old record's, so the new one is not trusted, and doctor fails.
    put_tags(settings, seeded_model, "2", record(seeded_model, "2").to_tags())
    result, reports = run_doctor(config)
    found = checks(by_name(reports)["signing"])[check]
    assert not found["ok"] and result.returncode == 1
    assert found["detail"] == "version 2: record not trusted: its signature does not verify"
    assert f"aml-console eval {seeded_model.name} --version 2" in found["hint"]
