"""Signatures of robustness records: ECDSA P-256 over the record's JSON, with the key that signs
the model artifacts (``[models] signing_public_keys`` verify both).

Without one, anyone who can write a registry tag could write a passing ``aml.robustness.record``
for a poisoned version, with its real sha256, and the promotion gate would let it through. The
signature is a tag beside the record (``aml.robustness.record_sig``, base64 DER).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from console.errors import ConfigError

SIGNATURE_TAG = "aml.robustness.record_sig"


def sign_record(record_json: str, private_key_pem: bytes) -> str:
    """The base64 signature of ``record_json`` under the PEM EC private key."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"the signing key is not an unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError("the signing key is not an elliptic-curve (P-256) private key")
    signature = key.sign(record_json.encode(), ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def record_signed_by(
    record_json: str, signature_b64: str, public_keys_pem: Sequence[bytes]
) -> bool:
    """Whether ``signature_b64`` is a signature of ``record_json`` by one of the keys. Keys that
    do not load are skipped (the artifact check names them); a garbled signature is False."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        signature = base64.b64decode(signature_b64.encode(), validate=True)
    except (binascii.Error, ValueError):
        return False
    for pem in public_keys_pem:
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError):
            continue
        if not isinstance(key, ec.EllipticCurvePublicKey):
            continue
        try:
            key.verify(signature, record_json.encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return True
    return False
