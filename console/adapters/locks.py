"""Leases on the resources a run changes (clients, models, alerts), so two operators cannot act
on one of them at once.

A run leases every resource it touches under one token, all at once: each script below checks
every key and then acts on all of them atomically, so a run holds all of its leases or none,
and two runs wanting overlapping sets cannot deadlock (the one whose script runs first gets
them all). Keys are taken in sorted order so the holder named in a refusal is deterministic.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from pydantic import BaseModel

from console.adapters.redis_client import endpoint_of, redis_call
from console.errors import BackendResponseError, LockHeldError

# Take every key if none is held; else return the (1-based) index of the first one held.
_ACQUIRE = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then return i end
end
for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'PX', ARGV[2]) end
return 0
"""
# Renew every key if all are still ours; else {0 (gone) or -1 (someone else's), index}.
_RENEW = """
for i, key in ipairs(KEYS) do
  local raw = redis.call('GET', key)
  if not raw then return {0, i} end
  if cjson.decode(raw)['token'] ~= ARGV[1] then return {-1, i} end
end
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[2]) end
return {1, 0}
"""
# Take every key if each is free or still held under the token a dead run left behind
# (resume/abort). Atomic, so two operators resuming one run cannot both get it.
_TAKE_BACK = """
for i, key in ipairs(KEYS) do
  local raw = redis.call('GET', key)
  if raw and cjson.decode(raw)['token'] ~= ARGV[2] then return i end
end
for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'PX', ARGV[3]) end
return 0
"""
# Delete the keys that are still ours; leave anyone else's alone.
_RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
  local raw = redis.call('GET', key)
  if raw and cjson.decode(raw)['token'] == ARGV[1] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
"""


class LockHolder(BaseModel):
    operator: str
    run_id: str
    token: str
    acquired_at: datetime


@dataclass(frozen=True)
class Lease:
    """One run's leases: every resource it changes, under one token."""

    keys: tuple[str, ...]
    resources: tuple[str, ...]
    holder: LockHolder
    lease_ms: int

    @property
    def target(self) -> str:
        return ", ".join(self.resources)


def _sorted(resources: str | Sequence[str]) -> tuple[str, ...]:
    items = [resources] if isinstance(resources, str) else list(resources)
    if not items:
        raise ValueError("a lease needs at least one resource")
    return tuple(sorted(set(items)))


class LockService:
    def __init__(self, redis: aioredis.Redis, prefix: str = "aml") -> None:
        self._redis = redis
        self._prefix = prefix
        self._endpoint = endpoint_of(redis)

    def key(self, resource: str) -> str:
        return f"{self._prefix}:lock:{resource}"

    async def holder(self, resource: str) -> LockHolder | None:
        raw = await redis_call(
            lambda: self._redis.get(self.key(resource)), "read lock", self._endpoint
        )
        if raw is None:
            return None
        try:
            return LockHolder.model_validate_json(raw)
        except ValueError:
            raise BackendResponseError(
                f"redis: lock {self.key(resource)} holds garbage", "redis"
            ) from None

    def _new_holder(self, operator: str, run_id: str) -> LockHolder:
        return LockHolder(
            operator=operator,
            run_id=run_id,
            token=secrets.token_hex(16),
            acquired_at=datetime.now(UTC),
        )

    async def acquire(
        self, resources: str | Sequence[str], operator: str, run_id: str, lease_s: float
    ) -> Lease:
        """Lease every resource, or none: raises LockHeldError naming the first one held."""
        names = _sorted(resources)
        keys = [self.key(r) for r in names]
        lease_ms = max(1, int(lease_s * 1000))
        holder = self._new_holder(operator, run_id)
        value = holder.model_dump_json()
        held = await redis_call(
            lambda: self._redis.eval(_ACQUIRE, len(keys), *keys, value, lease_ms),
            "take lock",
            self._endpoint,
        )
        if int(held) == 0:
            return Lease(keys=tuple(keys), resources=names, holder=holder, lease_ms=lease_ms)
        raise await self._held(names[int(held) - 1])

    async def take_back(
        self,
        resources: str | Sequence[str],
        operator: str,
        run_id: str,
        lease_s: float,
        dead_token: str | None,
    ) -> Lease:
        """For resume/abort: lease every resource that is free or still the dead run's own;
        if any is someone else's, take none."""
        names = _sorted(resources)
        keys = [self.key(r) for r in names]
        lease_ms = max(1, int(lease_s * 1000))
        holder = self._new_holder(operator, run_id)
        value = holder.model_dump_json()
        held = await redis_call(
            lambda: self._redis.eval(
                _TAKE_BACK, len(keys), *keys, value, dead_token or "", lease_ms
            ),
            "take back lock",
            self._endpoint,
        )
        if int(held) == 0:
            return Lease(keys=tuple(keys), resources=names, holder=holder, lease_ms=lease_ms)
        raise await self._held(names[int(held) - 1])

    async def _held(self, resource: str) -> LockHeldError:
        current = await self.holder(resource)
        if current is None:
            return LockHeldError(f"{resource} was locked a moment ago; try again")
        ttl_ms = await redis_call(
            lambda: self._redis.pttl(self.key(resource)), "read lock ttl", self._endpoint
        )
        return LockHeldError(
            f"{resource} is locked by {current.operator} (run {current.run_id}, since "
            f"{current.acquired_at:%H:%M:%S}Z, lease ends in {max(ttl_ms, 0) / 1000:.0f}s); "
            "nothing was changed"
        )

    async def renew(self, lease: Lease) -> str | None:
        """Renew every lease; None if done, else the first resource no longer ours."""
        result = await redis_call(
            lambda: self._redis.eval(
                _RENEW, len(lease.keys), *lease.keys, lease.holder.token, lease.lease_ms
            ),
            "renew lock",
            self._endpoint,
        )
        status, index = (int(x) for x in result)
        return None if status == 1 else lease.resources[index - 1]

    async def release(self, lease: Lease) -> None:
        await redis_call(
            lambda: self._redis.eval(_RELEASE, len(lease.keys), *lease.keys, lease.holder.token),
            "release lock",
            self._endpoint,
        )
