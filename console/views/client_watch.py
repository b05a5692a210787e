"""The clients the console is watching, whatever their traffic: those with a block, a budget
or output hardening in the policy store, and those a firing alert names. The Clients view
lists each of them (a slow attacker under a block sends nothing, yet stays on screen)."""

from __future__ import annotations

from dataclasses import dataclass

from console.adapters.backends import Backends
from console.adapters.policy_records import Block, Budget, Hardening
from console.errors import ConsoleError
from console.views.together import all_at_once, settled


@dataclass(frozen=True)
class WatchList:
    blocks: dict[str, Block]
    budgets: dict[str, Budget]
    hardenings: dict[str, Hardening]
    alerts: dict[str, list[tuple[str, str]]]
    """client -> (alertname, model) of its firing alerts."""
    policy_error: str | None = None
    alert_error: str | None = None

    @property
    def clients(self) -> set[str]:
        return {*self.blocks, *self.budgets, *self.hardenings, *self.alerts}


async def watch_list(backends: Backends) -> WatchList:
    """The policy store's entries and Alertmanager's firing alerts, read at once; either
    source down is reported beside what the other gave."""
    async with all_at_once() as group:
        policies_task = group.create_task(_policies(backends))
        alerts_task = group.create_task(settled(backends.alertmanager.alerts))
    blocks, budgets, hardenings, policy_error = policies_task.result()
    found_alerts = alerts_task.result()
    alerts: dict[str, list[tuple[str, str]]] = {}
    if isinstance(found_alerts, ConsoleError):
        return WatchList(blocks, budgets, hardenings, {}, policy_error, str(found_alerts))
    for alert in found_alerts:
        client = alert.labels.get("client")
        if client and alert.state in ("", "active"):
            entry = (alert.labels.get("alertname", "?"), alert.labels.get("model", ""))
            alerts.setdefault(client, []).append(entry)
    return WatchList(blocks, budgets, hardenings, alerts, policy_error)


async def _policies(
    backends: Backends,
) -> tuple[dict[str, Block], dict[str, Budget], dict[str, Hardening], str | None]:
    """Blocks, budgets and hardenings read at once; a failure is reported as the first read
    that failed, with what was read before it."""
    async with all_at_once() as group:
        blocks_task = group.create_task(settled(backends.policy.list_blocks))
        budgets_task = group.create_task(settled(backends.policy.list_budgets))
        hardenings_task = group.create_task(settled(backends.policy.list_hardenings))
    found_blocks, found_budgets = blocks_task.result(), budgets_task.result()
    found_hardenings = hardenings_task.result()
    if isinstance(found_blocks, ConsoleError):
        return {}, {}, {}, str(found_blocks)
    blocks = {b.client: b for b in found_blocks}
    if isinstance(found_budgets, ConsoleError):
        return blocks, {}, {}, str(found_budgets)
    budgets = {b.client: b for b in found_budgets}
    if isinstance(found_hardenings, ConsoleError):
        return blocks, budgets, {}, str(found_hardenings)
    return blocks, budgets, {h.client: h for h in found_hardenings}, None
