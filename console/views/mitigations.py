"""Mitigations view: what is in force now (blocks, budgets and output hardenings from the
policy store, with expiry), the shadow budgets being tried with what they would have refused,
and the registry changes the console made (promotions, rollbacks, alias moves), from the audit
log, with the runbook that undoes each (``revert_of``). The changes are read again only when
the audit log has changed since the last refresh (``audit_log_state``)."""

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

PROMOTE = "registry.promote"
ROLLBACK = "registry.rollback"
SET_ALIAS = "registry.set_alias"
REGISTRY_ACTIONS = (PROMOTE, ROLLBACK, SET_ALIAS)
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
    action: str = ""
    """The registry action that made it (``REGISTRY_ACTIONS``)."""


@dataclass(frozen=True)
class Revert:
    """The runbook that undoes a registry change, its parameters, and what to tell the
    operator about it (the plan they confirm shows the versions)."""

    runbook: str
    params: dict[str, str]
    note: str = ""


def revert_of(change: RegistryChange) -> Revert | str:
    """How to undo ``change``, or why it cannot be (one line). Champion goes back through the
    runbooks that may move it: a promotion is undone by ``rollback-model`` (champion -> the
    previous alias, which the promotion pointed at the old champion); a rollback (or an older
    ``set-model-alias`` of champion) by ``promote-model`` of the version rolled away from,
    which the robustness gate judges: putting back the version an incident took out of
    service is a promotion. Any other alias goes back with ``set-model-alias``."""
    model, alias, version = change.model, change.alias, change.before_version
    if not (model and alias):
        return "this change names no model alias to move back"
    if version is None:
        return "this change has no earlier version to go back to"
    if change.action == PROMOTE:
        return Revert(
            "rollback-model",
            {"model": model},
            f"champion back to the previous alias (v{version} when this promotion was made)",
        )
    if alias == "champion":
        return Revert(
            "promote-model",
            {"model": model, "version": version},
            f"v{version} back to champion, through the robustness gate",
        )
    if alias == "previous":
        return "previous moves only with promote-model (to the champion it replaces)"
    return Revert("set-model-alias", {"model": model, "alias": alias, "version": version})


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
                    action=record.action or "",
                    **_alias_move(record.action, record.before),
                )
            )
    return out


def _short(value: object) -> str:
    """``model=digits, alias=champion, version=1``: the scalar fields (not the figures and gate
    a promotion or rollback records beside them, which ``audit show`` has)."""
    if isinstance(value, dict):
        return ", ".join(
            f"{k}={v}" for k, v in value.items() if not isinstance(v, dict | list | tuple)
        )
    return "" if value is None else str(value)


def _alias_move(action: str | None, before: object) -> dict[str, str | None]:
    """Which alias moved and where it pointed before. A promotion's ``before`` holds both
    aliases it moves: what it took champion from is what a revert goes back to."""
    if not isinstance(before, dict):
        return {}
    alias = "champion" if action == PROMOTE else before.get("alias")
    version = before.get("champion") if action == PROMOTE else before.get("version")
    return {
        "model": before.get("model"),
        "alias": alias,
        "before_version": None if version is None else str(version),
    }
