"""Query budgets counted in Redis across every enforcement point, as Envoy's rate-limit
service counts them: fixed one-minute windows, one counter per client and window.

    <prefix>:budget-count:<client>:<window start, epoch seconds>   integer; expires after the
                                                                    window has ended
    <prefix>:shadow-count:<client>:<window start, epoch seconds>   the same, for a shadow budget

Each request of a client with a budget is one ``MULTI``/``EXEC`` of ``INCR`` + ``EXPIRE`` (a
transaction, so an ACL that allows INCR but not EXPIRE applies neither and the counter can never
outlive its window), so every lab
gateway process and every policy endpoint adds to the same count: N replicas admit ``qpm`` in
total, not N x ``qpm``. The request whose ``INCR`` answers more than ``qpm`` is refused, and the
client is remembered here as over its limit until the window ends: its further refusals are a
dictionary lookup, no round trip (the near-cache of Envoy's ratelimit service). A budget change
(``forget``) or a higher ``qpm`` than the one that was passed asks Redis again.

Windows follow each enforcement point's own clock: replicas whose clocks differ by s seconds
count s seconds of the minute into different windows, and a fixed window lets 2 x ``qpm``
through around its boundary (as Envoy's fixed windows do). Keep the gateways' clocks in NTP.

A shadow budget refuses nothing: every request of its client is counted in the shadow window
(``count_shadow``), in the same pipeline as the ``seen`` total of the budget's hash
(console.adapters.policy, ``shadow_key``); a request over the shadow ``qpm`` adds to
``would_refuse`` with a second command. Replicas share both, as they share the real counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from console.adapters.policy import SHADOW_TOTALS_TTL_S, check_client_id
from console.adapters.redis_client import endpoint_of, redis_call

WINDOW_S = 60
KEY_TTL_S = 2 * WINDOW_S
"""A counter outlives its window by a minute: a replica whose clock is a little behind still
finds it, and Redis drops it by itself afterwards."""


@dataclass(frozen=True)
class BudgetAnswer:
    admitted: bool
    count: int
    """The window's count after this request (the near-cached count for a cached refusal)."""
    retry_after_s: int = 0
    """Seconds to the end of the window, for a refusal's ``Retry-After`` (at least 1)."""


def window_of(wall: float) -> int:
    """The start (epoch seconds) of the one-minute window ``wall`` falls in."""
    return int(wall // WINDOW_S) * WINDOW_S


def retry_after(wall: float) -> int:
    return max(1, math.ceil(window_of(wall) + WINDOW_S - wall))


class GlobalBudgets:
    """Count requests against per-client budgets in Redis; remember who is over, locally."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        clock: Callable[[], float] = time.time,
        max_over: int = 50_000,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._endpoint = endpoint_of(redis)
        self._clock = clock
        self._max_over = max_over
        self._over: dict[str, tuple[int, int, int]] = {}
        """client -> (window start, qpm it passed, count then): over its limit this window."""

    def key(self, client: str, window_start: int) -> str:
        return f"{self._prefix}:budget-count:{check_client_id(client)}:{window_start}"

    def shadow_key(self, client: str, window_start: int) -> str:
        return f"{self._prefix}:shadow-count:{check_client_id(client)}:{window_start}"

    async def count_shadow(self, client: str, qpm: int, totals_key: str) -> bool:
        """One request of ``client`` against its shadow budget ``qpm``: True when the budget,
        enforced, would have refused it. Raises an AdapterError when Redis fails."""
        key = self.shadow_key(client, window_of(self._clock()))

        async def incr() -> list[object]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, KEY_TTL_S)
                pipe.hincrby(totals_key, "seen", 1)
                pipe.expire(totals_key, SHADOW_TOTALS_TTL_S)
                return await pipe.execute()

        replies = await redis_call(incr, "count shadow budget", self._endpoint)
        if int(str(replies[0])) <= qpm:
            return False

        async def note() -> object:
            return await self._redis.hincrby(totals_key, "would_refuse", 1)

        await redis_call(note, "count shadow refusal", self._endpoint)
        return True

    def refused(self, client: str, qpm: int) -> BudgetAnswer | None:
        """A refusal without asking Redis, if ``client`` passed ``qpm`` (or less) this window."""
        over = self._over.get(client)
        if over is None:
            return None
        wall = self._clock()
        window, passed_qpm, count = over
        if window != window_of(wall):
            del self._over[client]
            return None
        if qpm > passed_qpm:  # the budget was raised: the shared count may be under it again
            return None
        return BudgetAnswer(False, count, retry_after(wall))

    async def count(self, client: str, qpm: int) -> BudgetAnswer:
        """One request of ``client`` against ``qpm``: ``INCR`` + ``EXPIRE`` in one pipeline.
        Raises an AdapterError (console.adapters.redis_client) when Redis fails."""
        wall = self._clock()
        window = window_of(wall)
        key = self.key(client, window)

        async def incr() -> list[object]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, KEY_TTL_S)
                return await pipe.execute()

        replies = await redis_call(incr, "count budget", self._endpoint)
        count = int(str(replies[0]))
        if count <= qpm:
            return BudgetAnswer(True, count)
        self._remember(client, window, qpm, count)
        return BudgetAnswer(False, count, retry_after(wall))

    def forget(self, client: str | None = None) -> None:
        """Drop the near-cache of ``client`` (everyone when None): its budget changed."""
        if client is None:
            self._over.clear()
        else:
            self._over.pop(client, None)

    def _remember(self, client: str, window: int, qpm: int, count: int) -> None:
        self._over.pop(client, None)
        self._over[client] = (window, qpm, count)
        if len(self._over) > self._max_over:
            self._over = {c: o for c, o in self._over.items() if o[0] == window}
            while len(self._over) > self._max_over:
                del self._over[next(iter(self._over))]
