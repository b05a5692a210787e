"""Who a request comes from, when it says so with an API key: a pseudonym of the key, never the
key. The pseudonym is an HMAC under a secret of the deployment, so a metric label or a log line
that leaks cannot be matched to a key by hashing candidate keys (an unsalted hash could)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from console.private_files import PRIVATE_FILE, private_dir

PSEUDONYM_PREFIX = "key-"
SECRET_BYTES = 32


def key_pseudonym(api_key: str, secret: bytes) -> str:
    """``key-`` and 16 hex digits of HMAC-SHA256(secret, key): stable for one deployment."""
    digest = hmac.new(secret, api_key.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:16]


def bearer_pseudonym(authorization: str | None, secret: bytes) -> str | None:
    """The pseudonym of the key in ``Authorization: Bearer <key>``; None for no such header."""
    if authorization:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            return key_pseudonym(key.strip(), secret)
    return None


def load_or_create_secret(path: Path) -> bytes:
    """The deployment's pseudonym secret in ``path`` (0600), made on first use. Replicas that
    share the path share the secret; the first to start makes it (``O_EXCL``), the others
    read it."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(SECRET_BYTES))
    for _ in range(50):  # another replica may be between its O_EXCL and its write
        text = path.read_text().strip()
        if text:
            return text.encode()
        time.sleep(0.01)
    raise ValueError(f"{path} is empty")
