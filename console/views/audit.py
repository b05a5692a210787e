"""Audit view: the last records of the audit log and whether the whole log verifies."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from console.adapters.backends import Backends
from console.audit.log import AuditLog
from console.audit.records import AuditRecord
from console.audit.verify import VerifyReport, verify_log
from console.audit.witness import witness_path_for

TAIL = 200

_Signature = tuple[int, ...]
_verified: dict[tuple[Path, bytes], tuple[_Signature, VerifyReport]] = {}
"""Last report per log and key, with the size and mtime of the log, checkpoint and witness it
was made on: the view refreshes every few seconds, and verifying a long log takes seconds
(bench_audit_verify.py), so it is verified again only when one of them changed."""


@dataclass(frozen=True)
class AuditSnapshot:
    records: list[AuditRecord]
    """Newest last."""
    verify: VerifyReport | None
    verify_error: str | None


async def fetch_audit(backends: Backends) -> AuditSnapshot:
    return await asyncio.to_thread(_read, backends)


def _read(backends: Backends) -> AuditSnapshot:
    settings = backends.settings
    witness = witness_path_for(settings)
    files = (settings.audit_path, settings.audit_checkpoint_path, *([witness] if witness else []))
    if not any(path.exists() for path in files):
        return AuditSnapshot([], None, None)  # nothing has been done here yet
    log_exists = settings.audit_path.exists()
    records = AuditLog.from_settings(settings).tail(TAIL) if log_exists else []
    key = settings.audit_key()
    if key is None:
        return AuditSnapshot(records, None, "no audit HMAC key configured: cannot verify")
    signature = _signature(files)
    cached = _verified.get((settings.audit_path, key))
    if cached is not None and cached[0] == signature:
        return AuditSnapshot(records, cached[1], None)
    report = verify_log(settings.audit_path, key, settings.audit_checkpoint_path, witness)
    _verified[(settings.audit_path, key)] = (signature, report)
    return AuditSnapshot(records, report, None)


def _signature(files: tuple[Path, ...]) -> _Signature:
    sizes: list[int] = []
    for path in files:
        try:
            stat = path.stat()
        except FileNotFoundError:
            sizes += [-1, -1]
        else:
            sizes += [stat.st_size, stat.st_mtime_ns]
    return tuple(sizes)
