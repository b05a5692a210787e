"""Leases on a target (a client, a model) so two operators cannot act on it at once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from pydantic import BaseModel

from console.adapters.policy import redis_call
from console.errors import BackendResponseError, LockHeldError

# Renew or release only if the lease is still ours (compare the token, then act, atomically).
_RENEW = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
if cjson.decode(raw)['token'] ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# Take the lease if it is free, or if it is still held under the token a dead run left behind
# (resume/abort). Atomic, so two operators resuming one run cannot both get it.
_TAKE_BACK = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['token'] ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""
_RELEASE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
if cjson.decode(raw)['token'] ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
return 1
"""


class LockHolder(BaseModel):
    operator: str
    run_id: str
    token: str
    acquired_at: datetime


@dataclass(frozen=True)
class Lease:
    key: str
    target: str
    holder: LockHolder
    lease_ms: int


class LockService:
    def __init__(self, redis: aioredis.Redis, prefix: str = "aml") -> None:
        self._redis = redis
        self._prefix = prefix

    def key(self, target: str) -> str:
        return f"{self._prefix}:lock:{target}"

    async def holder(self, target: str) -> LockHolder | None:
        raw = await redis_call(lambda: self._redis.get(self.key(target)), "read lock")
        if raw is None:
            return None
        try:
            return LockHolder.model_validate_json(raw)
        except ValueError:
            raise BackendResponseError(
                f"redis: lock {self.key(target)} holds garbage", "redis"
            ) from None

    def _new_holder(self, operator: str, run_id: str) -> LockHolder:
        return LockHolder(
            operator=operator,
            run_id=run_id,
            token=secrets.token_hex(16),
            acquired_at=datetime.now(UTC),
        )

    async def acquire(self, target: str, operator: str, run_id: str, lease_s: float) -> Lease:
        """Take the lease, or raise LockHeldError naming the holder."""
        key = self.key(target)
        lease_ms = max(1, int(lease_s * 1000))
        holder = self._new_holder(operator, run_id)
        value = holder.model_dump_json()
        taken = await redis_call(
            lambda: self._redis.set(key, value, nx=True, px=lease_ms), "take lock"
        )
        if taken:
            return Lease(key=key, target=target, holder=holder, lease_ms=lease_ms)
        raise await self._held(target)

    async def take_back(
        self, target: str, operator: str, run_id: str, lease_s: float, dead_token: str | None
    ) -> Lease:
        """For resume/abort: take the lease if it is free or still the dead run's own."""
        key = self.key(target)
        lease_ms = max(1, int(lease_s * 1000))
        holder = self._new_holder(operator, run_id)
        taken = await redis_call(
            lambda: self._redis.eval(
                _TAKE_BACK, 1, key, holder.model_dump_json(), dead_token or "", lease_ms
            ),
            "take back lock",
        )
        if int(taken) == 1:
            return Lease(key=key, target=target, holder=holder, lease_ms=lease_ms)
        raise await self._held(target)

    async def _held(self, target: str) -> LockHeldError:
        current = await self.holder(target)
        if current is None:
            return LockHeldError(f"{target} was locked a moment ago; try again")
        ttl_ms = await redis_call(lambda: self._redis.pttl(self.key(target)), "read lock ttl")
        return LockHeldError(
            f"{target} is locked by {current.operator} (run {current.run_id}, since "
            f"{current.acquired_at:%H:%M:%S}Z, lease ends in {max(ttl_ms, 0) / 1000:.0f}s); "
            "nothing was changed"
        )

    async def renew(self, lease: Lease) -> bool:
        result = await redis_call(
            lambda: self._redis.eval(_RENEW, 1, lease.key, lease.holder.token, lease.lease_ms),
            "renew lock",
        )
        return int(result) == 1

    async def release(self, lease: Lease) -> None:
        await redis_call(
            lambda: self._redis.eval(_RELEASE, 1, lease.key, lease.holder.token),
            "release lock",
        )
