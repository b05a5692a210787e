"""Mitigations view: what is in force now (blocks, budgets and output hardenings from the
policy store, with expiry), the shadow budgets being tried with what they would have refused,
and the registry changes the console made (rollbacks), from the audit log. The changes are
read again only when the audit log has changed since the last refresh (``audit_log_state``)."""

from __future__ import annotations

import asyncio
import os
import weakref
from dataclasses import dataclass, field
from datetime import datetime

from console.adapters.backends import Backends
from console.adapters.policy_records import Block, Budget, Hardening, ShadowTotals
from console.audit.log import AuditLog
from console.config import Settings
from console.views.together import all_at_once

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
    model: str | None = None
    alias: str | None = None
    before_version: str | None = None
    """Where the alias pointed before: what a revert moves it back to."""
    seq: int = 0
    """The audit record's sequence number (a change's identity)."""


@dataclass(frozen=True)
class MitigationsSnapshot:
    blocks: list[Block]
    budgets: list[Budget]
    """Every budget record, enforced and shadow (``enforced_budgets``, ``shadow_budgets``)."""
    registry_changes: list[RegistryChange] = field(default_factory=list)
    audit_error: str | None = None
    shadow_totals: dict[str, ShadowTotals] = field(default_factory=dict)
    """client -> what its shadow budget would have refused since it was set."""
    hardenings: list[Hardening] = field(default_factory=list)
    """Clients whose answers are reduced (label-only, top1, rounded), soonest expiry first."""

    @property
    def enforced_budgets(self) -> list[Budget]:
        return [b for b in self.budgets if not b.shadow]

    @property
    def shadow_budgets(self) -> list[Budget]:
        return [b for b in self.budgets if b.shadow]

    def totals(self, budget: Budget) -> ShadowTotals:
        return self.shadow_totals.get(budget.client, ShadowTotals(0, 0))


def shadow_line(budget: Budget, totals: ShadowTotals) -> str:
    """``shadow 20/min: would have refused 37% of bob's traffic (1,204 of 3,250 since 14:02Z)``."""
    share = totals.share
    percent = "-" if share is None else f"{share:.0%}"
    return (
        f"shadow {budget.qpm}/min: would have refused {percent} of {budget.client}'s traffic "
        f"({totals.would_refuse:,} of {totals.seen:,} since {budget.set_at:%H:%M}Z)"
    )


async def fetch_mitigations(backends: Backends) -> MitigationsSnapshot:
    async with all_at_once() as group:
        blocks_task = group.create_task(backends.policy.list_blocks())
        budgets_task = group.create_task(backends.policy.list_budgets())
        hardenings_task = group.create_task(backends.policy.list_hardenings())
        audit_task = group.create_task(_audit(backends))
    blocks = sorted(blocks_task.result(), key=lambda b: b.expires_at)
    budgets = sorted(budgets_task.result(), key=lambda b: b.client)
    changes, audit_error = audit_task.result()
    # A second round trip only when shadow budgets are being tried.
    shadows = [b for b in budgets if b.shadow]
    totals = await backends.policy.shadow_totals(shadows) if shadows else {}
    hardenings = sorted(hardenings_task.result(), key=lambda h: h.expires_at)
    return MitigationsSnapshot(blocks, budgets, changes, audit_error, totals, hardenings)


AuditLogState = tuple[int, int, int, int] | None
"""The audit log file's device, inode, size and mtime (None: no log yet)."""

_changes_read: weakref.WeakKeyDictionary[Backends, tuple[AuditLogState, list[RegistryChange]]]
_changes_read = weakref.WeakKeyDictionary()
"""Per Backends: the registry changes last read and the audit log's state they were read at."""


def audit_log_state(settings: Settings) -> AuditLogState:
    """What changes whenever a record is appended to the log (or the log is replaced)."""
    try:
        st = os.stat(settings.audit_path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


async def _audit(backends: Backends) -> tuple[list[RegistryChange], str | None]:
    # The state is taken before the read: a record appended during it is read next time. No
    # log (None) has no changes until one is written, which gives it a state.
    state = audit_log_state(backends.settings)
    cached = _changes_read.get(backends)
    if cached is not None and cached[0] == state:
        return cached[1], None
    try:
        changes = await asyncio.to_thread(_registry_changes, backends)
    except Exception as exc:  # noqa: BLE001 - any unreadable log is shown, not raised
        _changes_read.pop(backends, None)
        return [], f"audit log: {exc}"
    _changes_read[backends] = (state, changes)
    return changes, None


def _registry_changes(backends: Backends) -> list[RegistryChange]:
    log = AuditLog.from_settings(backends.settings)
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
                    seq=record.seq,
                    **_alias_move(record.before),
                )
            )
    return out


def _short(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)


def _alias_move(before: object) -> dict[str, str | None]:
    if not isinstance(before, dict):
        return {}
    version = before.get("version")
    return {
        "model": before.get("model"),
        "alias": before.get("alias"),
        "before_version": None if version is None else str(version),
    }
