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
import stat
import tempfile
import time
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
_PAIR_WAIT_S = 5.0
"""How long ``ensure_key_pair`` waits for the ``.pub`` of a private key another process is
making."""
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
    0700 directory, and its public key beside it (``.pub``). Returns the public key's path.

    The private key is created exclusively (ConfigError if it exists, even when another process
    made it a moment ago) and written whole before the public key appears: whoever sees the
    ``.pub`` sees the complete pair, and two first runs cannot leave one's private key beside
    the other's public key."""
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
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(private_key, flags, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{private_key} exists already: remove it first to make a new pair"
        ) from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        private_key.unlink(missing_ok=True)
        raise
    public = public_key_path(private_key)
    write_private(public, public_pem)
    os.chmod(public, 0o644)  # a public key: others may verify with it
    return public


def ensure_key_pair(private_key: Path) -> bool:
    """Make the pair if the private key is missing (True when it was made now). A private key
    with no ``.pub`` beside it is waited for a moment (another process is making the pair),
    then refused; so is one that others may read or write."""
    if not private_key.exists():
        try:
            generate_key_pair(private_key)
            return True
        except ConfigError:
            if not private_key.exists():
                raise
    public = public_key_path(private_key)
    deadline = time.monotonic() + _PAIR_WAIT_S
    while not public.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not public.exists():
        raise ConfigError(f"{private_key} has no public key beside it ({public})")
    check_private_key_mode(private_key)
    return False


def check_private_key_mode(private_key: Path) -> None:
    """ConfigError if the private key file is a group's or others' to read or write."""
    try:
        mode = stat.S_IMODE(private_key.stat().st_mode)
    except OSError:
        return  # missing: the caller says so
    if mode & 0o077:
        raise ConfigError(
            f"signing key {private_key} is open to other users (mode {mode:04o}): "
            f"chmod 600 {private_key}"
        )


def sign(onnx: bytes, private_key: Path) -> bytes:
    """The model-signing signature (a Sigstore bundle, JSON) of ``onnx`` by the PEM EC P-256
    key at ``private_key``. Raises ConfigError if the key cannot be read or used: missing,
    open to other users, not PEM, encrypted, not an EC P-256 private key."""
    if not private_key.is_file():
        raise ConfigError(f"signing key {private_key} does not exist")
    check_private_key_mode(private_key)
    _check_private_key(private_key)
    signing = _library().signing
    with _workdir() as work:
        model = _write(work, _SIGNED_NAME, onnx)
        signature = work / "signature"
        try:
            signing.Config().use_elliptic_key_signer(private_key=private_key).sign(model, signature)
        except (ValueError, TypeError, OSError, AttributeError) as exc:
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
    readable = [key for key in public_keys if key.is_file()]
    if not readable:
        raise ArtifactRefused(
            "no_signing_key",
            f"{what}: no configured public key can be read ({', '.join(map(str, public_keys))})",
        )
    for key in readable:
        _check_public_key(what, key)
    verifying = _library().verifying
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


def _check_public_key(what: str, path: Path) -> None:
    """ArtifactRefused (``no_signing_key``) naming ``path`` unless it holds a PEM EC P-256
    public key: a wrong key file is the configuration's fault, not the artifact's."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError, OSError) as exc:
        problem = f"cannot be read as a PEM public key ({type(exc).__name__})"
    else:
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return
        problem = f"is not an EC P-256 public key ({_key_kind(key)})"
    raise ArtifactRefused("no_signing_key", f"{what}: the public key {path} {problem}")


def _check_private_key(path: Path) -> None:
    """ConfigError naming ``path`` unless it holds an unencrypted PEM EC P-256 private key."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError, UnsupportedAlgorithm) as exc:
        # The library's text names no key content ("Could not deserialize key data", "Password
        # was not given but private key is encrypted"); only its first line is shown.
        raise ConfigError(
            f"cannot sign with {path}: not an unencrypted PEM private key ({_first_line(exc)})"
        ) from None
    if not (isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)):
        raise ConfigError(f"cannot sign with {path}: not an EC P-256 key ({_key_kind(key)})")


def _key_kind(key: object) -> str:
    curve = getattr(key, "curve", None)
    name = type(key).__name__.lstrip("_")
    return f"{name}, curve {curve.name}" if curve is not None else name


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
    "check_private_key_mode",
    "ensure_key_pair",
    "generate_key_pair",
    "lab_key_paths",
    "private_key_path",
    "public_key_path",
    "sign",
    "signing_policy",
    "verify",
]
