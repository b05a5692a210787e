"""The artifact signing policy (``[models] signing_public_keys``, ``signing_required``,
``signing_key``): the keys in force, by path and fingerprint (never their content), or why
nothing is verified; the private key records and lab artifacts are signed with; and whether each
served champion carries a robustness record this context trusts.

Fails when signatures are required and no key is configured (every artifact is refused), when a
configured key cannot be read or is not a public key, when the signing key is readable by others
or does not belong to any key in force (what it signs would not be trusted here), and when a
champion's record is there but not trusted (unsigned, signed by another key, measured another
artifact or version: what a registry writer could have put there). A champion not evaluated,
or one whose trusted record misses the gate, is reported but does not fail: that is the model's
state, which the promotion gate acts on, not the console's setup.
"""

from __future__ import annotations

import asyncio
import hashlib
import stat
from pathlib import Path

from console.adapters.backends import Backends
from console.config import Settings
from console.doctor.model import Check, EndpointReport, Findings, describe
from console.errors import ConsoleError
from console.model_signing import private_key_path, signing_policy
from console.robustness import RECORD_TAG, gate_misses
from console.robustness_trust import RecordTrust, record_trust, trusted_record

CHAMPION = "champion"
KEYGEN_HINT = "aml-console model keygen makes a pair; its .pub goes in [models] signing_public_keys"


def endpoint_url(settings: Settings) -> str:
    """What the report names: the keys in force, or ``-``."""
    keys = signing_policy(settings).public_keys
    return ", ".join(str(p) for p in keys) if keys else "-"


async def check_signing(backends: Backends, findings: Findings) -> EndpointReport:
    settings = backends.settings
    findings.checks.extend(await asyncio.to_thread(_key_checks, settings))
    trust = record_trust(settings)
    champions = await asyncio.gather(
        *(_champion(backends, name, trust) for name in settings.models.served)
    )
    findings.checks.extend(champions)
    return findings.report()


def _key_checks(settings: Settings) -> list[Check]:
    policy = signing_policy(settings)
    checks: list[Check] = []
    fingerprints: set[str] = set()
    if not policy.public_keys:
        if policy.required:
            checks.append(
                Check(
                    "policy",
                    False,
                    "signatures are required ([models] signing_required) and no public key is "
                    f"configured ({policy.source}): every artifact is refused",
                    f"set [models] signing_public_keys to the key(s) your artifacts are signed "
                    f"with ({KEYGEN_HINT})",
                )
            )
        else:
            checks.append(Check("policy", True, f"{policy.skipped}: unsigned artifacts are served"))
    else:
        shown, problems = [], []
        for path in policy.public_keys:
            found, problem = _public_fingerprint(path)
            if found:
                fingerprints.add(found)
                shown.append(f"{path} ({found})")
            else:
                problems.append(f"{path}: {problem}")
        detail = f"verifies with {len(shown)} key(s) from {policy.source}"
        if shown:
            detail += ": " + ", ".join(shown)
        if problems:
            checks.append(
                Check(
                    "policy",
                    False,
                    f"{detail}; unusable: {'; '.join(problems)}",
                    "point [models] signing_public_keys at readable PEM public keys (the .pub of "
                    "each signing key)",
                )
            )
        else:
            checks.append(Check("policy", True, detail))
    checks.append(_signing_key(settings, fingerprints, verifies=bool(policy.public_keys)))
    return checks


def fingerprint(der: bytes) -> str:
    """``sha256:<first 32 hex>`` of a public key's DER SubjectPublicKeyInfo."""
    return "sha256:" + hashlib.sha256(der).hexdigest()[:32]


def _public_fingerprint(path: Path) -> tuple[str, str]:
    """(fingerprint, "") or ("", why the file is not a usable public key)."""
    from cryptography.hazmat.primitives import serialization

    try:
        data = path.read_bytes()
    except OSError as exc:
        return "", exc.strerror or type(exc).__name__
    if b"PRIVATE KEY" in data:
        return "", "holds a private key: configure its public key (.pub) instead"
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        return "", "not a PEM public key"
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return fingerprint(der), ""


def _signing_key(settings: Settings, fingerprints: set[str], *, verifies: bool) -> Check:
    """The private key ``eval`` signs records with (and the lab its artifacts): its path, mode
    and the fingerprint of its public half, never its content."""
    from cryptography.hazmat.primitives import serialization

    path = private_key_path(settings)
    if not path.exists():
        return Check(
            "signing key",
            True,
            f"none at {path}: eval records go unsigned"
            + (" (and are not trusted where keys are in force)" if verifies else ""),
        )
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        data = path.read_bytes()
    except OSError as exc:
        return Check(
            "signing key",
            False,
            f"{path}: {exc.strerror or exc}",
            "make the signing key readable by you (0600)",
        )
    if mode & 0o077:
        return Check(
            "signing key",
            False,
            f"{path} is {mode:04o}",
            f"chmod 600 {path}: whoever reads it can sign artifacts and records",
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return Check(
            "signing key",
            False,
            f"{path} is not an unencrypted PEM private key",
            f"replace it ({KEYGEN_HINT})",
        )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    found = fingerprint(der)
    del key, data
    if verifies and found not in fingerprints:
        return Check(
            "signing key",
            False,
            f"{path} ({found}, 0600) is not one of the keys in force: what it signs is not "
            "trusted here",
            "add its .pub to [models] signing_public_keys, or set [models] signing_key to the "
            "key whose public half is configured",
        )
    return Check("signing key", True, f"{path} ({found}, 0600)")


async def _champion(backends: Backends, name: str, trust: RecordTrust) -> Check:
    check = f"champion {name}"
    registry = backends.registry
    try:
        model = await registry.get_model(name)
        version = model.aliases.get(CHAMPION) if model is not None else None
        found = await registry.get_version(name, version) if version else None
    except ConsoleError as exc:
        return Check(check, False, describe(exc), "see the [mlflow] endpoint's checks")
    if version is None or found is None:
        return Check(check, True, "no champion: nothing served")
    recorded = trusted_record(found.tags, trust, model=name, version=version)
    record = recorded.record
    if record is None:
        if not found.tags.get(RECORD_TAG):
            return Check(
                check,
                True,
                f"version {version}: not evaluated (the promotion gate refuses a candidate "
                "without a trusted record)",
            )
        return Check(
            check,
            False,
            f"version {version}: {recorded.problem}"[:400],
            f"evaluate it again (aml-console eval {name} --version {version}) with the "
            "context's signing key, and find out who wrote the record it has",
        )
    misses = gate_misses(record, backends.settings.robustness)
    verdict = "passes the gate" if not misses else f"misses the gate ({misses[0].why})"
    caveat = f"; record {recorded.unchecked}" if recorded.unchecked else "; record signed"
    return Check(
        check, True, f"version {version}: {verdict}{caveat} (evaluated {record.evaluated_at})"
    )
