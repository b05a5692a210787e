"""Audit view: the last records of the audit log and whether the whole log verifies."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from console.audit.log import AuditLog
from console.audit.records import AuditRecord
from console.audit.verify import VerifyReport, verify_log
from console.views.sources import Sources

TAIL = 200


@dataclass(frozen=True)
class AuditSnapshot:
    records: list[AuditRecord]
    """Newest last."""
    verify: VerifyReport | None
    verify_error: str | None


async def fetch_audit(sources: Sources) -> AuditSnapshot:
    return await asyncio.to_thread(_read, sources)


def _read(sources: Sources) -> AuditSnapshot:
    settings = sources.settings
    if not settings.audit_path.exists() and not settings.audit_checkpoint_path.exists():
        return AuditSnapshot([], None, None)  # nothing has been done here yet
    records = AuditLog.from_settings(settings).tail(TAIL)
    key = settings.audit_key()
    if key is None:
        return AuditSnapshot(records, None, "no audit HMAC key configured: cannot verify")
    report = verify_log(settings.audit_path, key, settings.audit_checkpoint_path)
    return AuditSnapshot(records, report, None)
