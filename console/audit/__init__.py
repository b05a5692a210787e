"""Audit log: every action leaves an intent record before and an outcome record after.

Records form a hash chain, each HMAC'd; a separate authenticated checkpoint guards the tail,
and a witness away from the log's directory (``console.audit.witness``) guards against the log
being rolled back with its checkpoint. The Redis mirror lives in ``console.audit.mirror`` and is
imported only when configured.
"""

from console.audit.log import AuditLog
from console.audit.records import AuditEvent, AuditRecord, RecordKind
from console.audit.verify import VerifyReport, verify_log

__all__ = [
    "AuditEvent",
    "AuditLog",
    "AuditRecord",
    "RecordKind",
    "VerifyReport",
    "verify_log",
]
