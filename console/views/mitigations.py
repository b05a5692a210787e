"""Mitigations view: what is in force now (blocks and budgets from the policy store, with
expiry) and the registry changes the console made (rollbacks), from the audit log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from console.adapters.policy import Block, Budget
from console.audit.log import AuditLog
from console.views.sources import Sources

REGISTRY_ACTIONS = ("registry.rollback", "registry.set_alias")
RECENT_RECORDS = 500


@dataclass(frozen=True)
class RegistryChange:
    time: datetime
    runbook: str
    run_id: str
    target: str
    before: str
    after: str
    operator: str


@dataclass(frozen=True)
class MitigationsSnapshot:
    blocks: list[Block]
    budgets: list[Budget]
    registry_changes: list[RegistryChange] = field(default_factory=list)
    audit_error: str | None = None


async def fetch_mitigations(sources: Sources) -> MitigationsSnapshot:
    blocks = sorted(await sources.policy.list_blocks(), key=lambda b: b.expires_at)
    budgets = sorted(await sources.policy.list_budgets(), key=lambda b: b.client)
    changes: list[RegistryChange] = []
    audit_error = None
    try:
        changes = await asyncio.to_thread(_registry_changes, sources)
    except Exception as exc:  # noqa: BLE001 - any unreadable log is shown, not raised
        audit_error = f"audit log: {exc}"
    return MitigationsSnapshot(blocks, budgets, changes, audit_error)


def _registry_changes(sources: Sources) -> list[RegistryChange]:
    log = AuditLog.from_settings(sources.settings)
    out: list[RegistryChange] = []
    for record in reversed(log.tail(RECENT_RECORDS)):
        applied = record.kind == "step-outcome" and record.result == "ok"
        if applied and record.action in REGISTRY_ACTIONS:
            out.append(
                RegistryChange(
                    time=record.time,
                    runbook=record.runbook,
                    run_id=record.run_id,
                    target=record.target or "",
                    before=_short(record.before),
                    after=_short(record.after),
                    operator=record.operator,
                )
            )
    return out


def _short(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)
