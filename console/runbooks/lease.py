"""Keeps a run's lease alive while it runs, and notices when it is lost."""

from __future__ import annotations

import asyncio
import contextlib
import time

from console.adapters.locks import Lease, LockService
from console.errors import AdapterError


class LeaseKeeper:
    """Renews the run's leases every third of their length in a background task.

    A renew that fails for a moment (a Redis blip) is not a loss: the lease is only taken as
    lost when Redis says it is no longer ours, or when no renew has succeeded for a whole lease.
    """

    def __init__(self, locks: LockService, lease: Lease) -> None:
        self._locks = locks
        self.lease = lease
        self.lost: str | None = None
        self._last_renewed = time.monotonic()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def token(self) -> str:
        return self.lease.holder.token

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        interval = max(0.05, self.lease.lease_ms / 3000)
        while self.lost is None and not self._stopping.is_set():
            # Wait on an event rather than relying on cancel: a cancel that lands inside
            # redis-py's own wait_for can be swallowed, and the loop would never end.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)
            if not self._stopping.is_set():
                await self.check()

    async def check(self) -> None:
        """Renew now; sets ``lost`` with the reason when the lease is gone."""
        try:
            gone = await self._locks.renew(self.lease)
            if gone is None:
                self._last_renewed = time.monotonic()
                return
            holder = await self._locks.holder(gone)
            who = f"now held by {holder.operator} (run {holder.run_id})" if holder else "expired"
            self.lost = f"lost the lock on {gone} ({who})"
        except AdapterError as exc:
            if time.monotonic() - self._last_renewed >= self.lease.lease_ms / 1000:
                self.lost = f"cannot renew the lock on {self.lease.target}: {exc}"

    async def stop(self, release: bool) -> None:
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=self.lease.lease_ms / 1000)
            except (TimeoutError, asyncio.CancelledError, AdapterError):
                self._task.cancel()
        if release and self.lost is None:
            with contextlib.suppress(AdapterError):
                await self._locks.release(self.lease)
