"""Toasts about approval requests, on every console of the context: a new request of another
operator ("approval requested: alice wants block-client on client:x (run ID) - 9 to review"),
and a decision on one of this operator's own requests.

How it learns of changes: the store's pub/sub channel (``<prefix>:approvals:changed``) wakes
it, and it then reads the requests (``Approvals.newest``) and compares them with what it saw
last. Chosen over polling alone because a toast then comes as the request is made, and Redis
is read only when something changed; the channel carries only a run id, so a lost notice
(a reconnect, a slow consumer) costs nothing but latency: the requests are also read every
WAKE_S seconds without one, which is also when a request past its ttl is marked expired.

Redis down or unreachable: one warning toast for the app's life (per context), then quiet
retries with a growing pause; the toasts resume when it answers. Runs as one app-level worker
(``start``), replaced on a context switch (``exclusive``), cancelled when the app exits.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import TYPE_CHECKING, Any, Literal

from console.errors import ConsoleError
from console.tui.text import printable

if TYPE_CHECKING:
    from textual.app import App

    from console.adapters.approval_store import ApprovalRecord
    from console.adapters.backends import Backends

log = logging.getLogger(__name__)

WAKE_S = 10.0
"""Read the requests at least this often, notice or not (at most: the channel's timeout)."""
RETRY_S = (5.0, 60.0)
"""The pause after a failed read, doubling from the first to the second."""
GROUP = "approval-watch"
Toast = tuple[str, Literal["information", "warning", "error"]]


def pending_key() -> str:
    from console.views.catalog import declared

    return declared("pending").key


def request_toast(record: ApprovalRecord, key: str) -> str:
    return (
        f"approval requested: {printable(record.requester, 60)} wants "
        f"{printable(record.runbook, 60)} on {printable(record.target, 80)} "
        f"(run {printable(record.run_id, 80)}) - {key} to review"
    )


def decision_toast(record: ApprovalRecord) -> Toast:
    what = f"{printable(record.runbook, 60)} on {printable(record.target, 80)}"
    who = printable(record.decided_by or "?", 60)
    if record.status == "approved":
        return f"your run {record.run_id} ({what}) was approved by {who}", "information"
    reason = f": {printable(record.reason, 200)}" if record.reason else ""
    return f"your run {record.run_id} ({what}) was denied by {who}{reason}", "warning"


def announcements(
    seen: dict[str, str] | None, records: list[ApprovalRecord], operator: str, key: str
) -> list[Toast]:
    """What to say about ``records`` given the statuses ``seen`` on the previous read (None:
    this is the first read, when only what already waits is summed up)."""
    theirs = [r for r in records if r.status == "pending" and r.requester != operator]
    if seen is None:
        if len(theirs) == 1:
            return [(request_toast(theirs[0], key), "information")]
        if theirs:
            return [(f"{len(theirs)} approval requests pending - {key} to review", "information")]
        return []
    toasts: list[Toast] = [
        (request_toast(r, key), "information") for r in reversed(theirs) if r.run_id not in seen
    ]
    for r in records:
        decided = r.status in ("approved", "denied") and seen.get(r.run_id) == "pending"
        if decided and r.requester == operator and r.decided_by != operator:
            toasts.append(decision_toast(r))
    return toasts


def start(app: App[Any], backends: Backends) -> None:
    """Watch the requests of ``backends``' context (replacing any watch already running)."""
    app.run_worker(watch(app, backends), group=GROUP, exclusive=True, exit_on_error=False)


async def watch(app: App[Any], backends: Backends) -> None:
    # redis (0.5 s) and the approvals' modules load off the event loop, after the first frame.
    pending = await asyncio.to_thread(importlib.import_module, "console.views.pending")
    settings = backends.settings
    key = pending_key()
    seen: dict[str, str] | None = None
    warned = False
    pause = RETRY_S[0]
    while True:
        try:
            approvals = pending.approvals_of(backends)
            async with backends.approvals.changes() as next_change:
                while True:
                    records = await approvals.newest()
                    for message, severity in announcements(seen, records, settings.operator, key):
                        app.notify(message, severity=severity, timeout=20, markup=False)
                    seen = {r.run_id: r.status for r in records}
                    pause = RETRY_S[0]
                    await next_change(WAKE_S)
        except ConsoleError as exc:
            if not warned:
                warned = True
                app.notify(
                    f"approval toasts paused: {printable(exc, 300)} (retrying quietly; the "
                    "Pending view shows the requests once it answers)",
                    severity="warning",
                    timeout=15,
                    markup=False,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_S[1])
        except Exception:  # a bug (or a harness without Redis) must not take the console down
            log.exception("the approval watch stopped")
            return
