"""Signed ONNX artifacts: OpenSSF model-signing (``model_signing``) with an EC P-256 key,
offline (no Sigstore, no network). A version's signature is a file beside its artifact in the
registry (``model.onnx`` -> ``model.onnx.sig``); the gateway and replay check it against the
configured public keys after the sha256 tag, so whoever can rewrite both an artifact and its
``onnx_sha256`` tag still cannot make the result run without the private key.

Refusals are ``ArtifactRefused`` with the reasons ``unsigned`` (no signature beside the
artifact), ``bad_signature`` (it does not verify against any configured key: the bytes changed,
or another key signed them) and ``no_signing_key`` (signatures are required, or a key is
configured, but no public key can be read). The messages are one line and name the model and
version, never a key's content.

model-signing works on files: the bytes are written to a private temporary directory (0700,
removed afterwards) under a fixed name, so a signature binds the bytes, not the artifact's
path. It costs ~0.6 s to import, so it is imported when first used.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from console.errors import ArtifactRefused, ConfigError
from console.private_files import open_private, private_dir, write_private

if TYPE_CHECKING:
    from console.config import Settings

SIGNATURE_SUFFIX = ".sig"
"""The signature of ``<artifact>`` is ``<artifact>.sig`` in the same directory."""
MAX_SIGNATURE_BYTES = 1024 * 1024
REASONS = ("unsigned", "bad_signature", "no_signing_key")
"""What a signature check refuses with (bounded: the gateway's load-failure metric label)."""
LAB_KEY_NAME = "model-signing.key"
_SIGNED_NAME = "model.onnx"
"""The file name the bytes get in the temporary directory (signed and verified alike)."""


@dataclass(frozen=True)
class SigningPolicy:
    """What a signature check does: verify against ``public_keys``; with none, refuse
    (``required``) or skip."""

    public_keys: tuple[Path, ...]
    required: bool
    source: str
    """Where the keys came from (``[models] signing_public_keys``, the lab's default file) or
    why there are none: shown by ``model verify`` and logged by the gateway."""

    @property
    def verifies(self) -> bool:
        return bool(self.public_keys)

    @property
    def skipped(self) -> str | None:
        """Why nothing is verified (None when something is, or a missing key is refused)."""
        if self.public_keys or self.required:
            return None
        return f"signatures not verified: {self.source}"


def lab_key_paths(run_dir: Path) -> tuple[Path, Path]:
    """The lab's key pair: ``<run_dir>/secrets/model-signing.key`` and its ``.pub``."""
    private = run_dir / "secrets" / LAB_KEY_NAME
    return private, public_key_path(private)


def public_key_path(private_key: Path) -> Path:
    return private_key.with_suffix(".pub")


def private_key_path(settings: Settings) -> Path:
    """``[models] signing_key``, or the lab's ``<run_dir>/secrets/model-signing.key``."""
    return settings.models.signing_key or lab_key_paths(settings.run_dir)[0]


def signing_policy(settings: Settings) -> SigningPolicy:
    """The keys in force: ``[models] signing_public_keys``; else the ``.pub`` beside the
    signing key (the lab's) when that file exists; else none."""
    models = settings.models
    if models.signing_public_keys:
        return SigningPolicy(
            tuple(models.signing_public_keys),
            models.signing_required,
            "[models] signing_public_keys",
        )
    default = public_key_path(private_key_path(settings))
    if default.is_file():
        return SigningPolicy((default,), models.signing_required, f"the lab's key {default}")
    return SigningPolicy(
        (),
        models.signing_required,
        f"no [models] signing_public_keys and no {default}",
    )


def generate_key_pair(private_key: Path) -> Path:
    """A new EC P-256 key pair: the private key (PKCS#8 PEM) at ``private_key`` 0600, in a
    0700 directory, and its public key beside it (``.pub``). Returns the public key's path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_dir(private_key.parent, tighten=False)
    write_private(private_key, private_pem)
    public = public_key_path(private_key)
    write_private(public, public_pem)
    os.chmod(public, 0o644)  # a public key: others may verify with it
    return public


def ensure_key_pair(private_key: Path) -> bool:
    """Make the pair if the private key is missing (True when it was made now)."""
    if private_key.exists():
        if not public_key_path(private_key).exists():
            raise ConfigError(
                f"{private_key} has no public key beside it ({public_key_path(private_key)})"
            )
        return False
    generate_key_pair(private_key)
    return True


def sign(onnx: bytes, private_key: Path) -> bytes:
    """The model-signing signature (a Sigstore bundle, JSON) of ``onnx`` by the PEM EC key
    at ``private_key``. Raises ConfigError if the key cannot be read or used."""
    signing = _library().signing
    if not private_key.is_file():
        raise ConfigError(f"signing key {private_key} does not exist")
    with _workdir() as work:
        model = _write(work, _SIGNED_NAME, onnx)
        signature = work / "signature"
        try:
            signing.Config().use_elliptic_key_signer(private_key=private_key).sign(model, signature)
        except (ValueError, TypeError, OSError) as exc:
            raise ConfigError(f"cannot sign with {private_key}: {_first_line(exc)}") from None
        return signature.read_bytes()


def verify(
    model: str,
    version: str,
    onnx: bytes,
    signature: bytes | None,
    public_keys: Sequence[Path],
) -> Path:
    """The public key ``signature`` of ``onnx`` verifies against; ArtifactRefused otherwise
    (``unsigned``, ``bad_signature``, ``no_signing_key``)."""
    what = f"{model} version {version}"
    if not public_keys:
        raise ArtifactRefused(
            "no_signing_key", f"{what}: signatures are required and no public key is configured"
        )
    if signature is None or not signature.strip():
        raise ArtifactRefused(
            "unsigned", f"{what} is unsigned (no {SIGNATURE_SUFFIX} beside its artifact)"
        )
    verifying = _library().verifying
    readable = [key for key in public_keys if key.is_file()]
    if not readable:
        raise ArtifactRefused(
            "no_signing_key",
            f"{what}: no configured public key can be read ({', '.join(map(str, public_keys))})",
        )
    problems: list[str] = []
    with _workdir() as work:
        path = _write(work, _SIGNED_NAME, onnx)
        sig = _write(work, "signature", signature)
        for key in readable:
            try:
                verifying.Config().use_elliptic_key_verifier(public_key=key).verify(path, sig)
            except Exception as exc:  # the library raises ValueError, JSON and key errors
                problems.append(_problem(exc))
                continue
            return key
    raise ArtifactRefused(
        "bad_signature",
        f"{what}: the signature does not verify against "
        f"{len(readable)} configured key(s): {problems[0]}",
    )


def check(
    policy: SigningPolicy, model: str, version: str, onnx: bytes, signature: bytes | None
) -> str:
    """What the policy says of this artifact: ``verified with <key>`` or the reason it was
    not checked; ArtifactRefused when it is refused."""
    if policy.skipped is not None:
        return policy.skipped
    key = verify(model, version, onnx, signature, policy.public_keys)
    return f"signature verified with {key}"


def _problem(exc: Exception) -> str:
    text = _first_line(exc)
    if "Key mismatch" in text:
        return "signed by another key"
    if "mismatch" in text.lower():
        return "the artifact's bytes are not the ones signed"
    return f"not a valid signature ({type(exc).__name__})"


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


class _Library:
    def __init__(self) -> None:
        from model_signing import signing, verifying

        self.signing = signing
        self.verifying = verifying


_loaded: _Library | None = None


def _library() -> _Library:
    global _loaded
    if _loaded is None:
        try:
            _loaded = _Library()
        except ImportError as exc:
            raise ConfigError(
                f"model signing needs {exc.name}: pip install 'model-signing~=1.1.1' pyOpenSSL"
            ) from None
    return _loaded


class _workdir:
    """A private temporary directory (0700), removed with its files afterwards."""

    def __enter__(self) -> Path:
        self._dir = tempfile.TemporaryDirectory(prefix="aml-signing-")
        path = Path(self._dir.name)
        os.chmod(path, 0o700)
        return path

    def __exit__(self, *exc: object) -> None:
        self._dir.cleanup()


def _write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    fd = open_private(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


__all__ = [
    "LAB_KEY_NAME",
    "MAX_SIGNATURE_BYTES",
    "REASONS",
    "SIGNATURE_SUFFIX",
    "SigningPolicy",
    "check",
    "ensure_key_pair",
    "generate_key_pair",
    "lab_key_paths",
    "private_key_path",
    "public_key_path",
    "sign",
    "signing_policy",
    "verify",
]
