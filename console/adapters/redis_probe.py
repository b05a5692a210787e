"""What ``doctor`` asks Redis: does it answer, its version, and whether a key under the console's
prefix can be written and removed.

Failures are translated by ``redis_client.redis_call``, as every Redis command of the console
is: refused credentials are a ``BackendAuthError`` (401; NOPERM 403), so ``doctor`` words them
exactly as a runbook run would.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from console.adapters.redis_client import endpoint_of, redis_call
from console.errors import BackendResponseError

if TYPE_CHECKING:
    import redis.asyncio as aioredis

T = TypeVar("T")
PROBE_TTL_MS = 10_000
"""A probe key that outlives a crash between write and delete expires by itself."""


async def ping(redis: aioredis.Redis) -> None:
    """Connect (and authenticate) if not yet connected, and PING."""
    await _call(redis, lambda: redis.ping(), "PING")


async def server_version(redis: aioredis.Redis) -> str:
    """``redis_version`` of ``INFO server`` (empty when the server does not say)."""
    info = await _call(redis, lambda: redis.info("server"), "INFO server")
    if not isinstance(info, dict):
        raise BackendResponseError("redis: INFO server answered no fields", "redis")
    return str(info.get("redis_version", ""))


async def write_probe(redis: aioredis.Redis, prefix: str) -> str:
    """Write ``<prefix>:doctor:<random>`` (with a short expiry), read it back and delete it;
    the key it used. Raises when any of the three fails or the key is not gone afterwards."""
    key = f"{prefix}:doctor:{secrets.token_hex(8)}"
    value = secrets.token_hex(8)
    await _call(redis, lambda: redis.set(key, value, px=PROBE_TTL_MS), f"SET {key}")
    try:
        read = await _call(redis, lambda: redis.get(key), f"GET {key}")
    finally:
        removed = await _call(redis, lambda: redis.delete(key), f"DEL {key}")
    if read != value:
        raise BackendResponseError(f"redis: {key} read back another value", "redis")
    if removed != 1:
        raise BackendResponseError(f"redis: DEL {key} removed {removed} keys, not 1", "redis")
    return key


async def _call(redis: aioredis.Redis, call: Callable[[], Awaitable[T]], what: str) -> T:
    return await redis_call(call, what, endpoint_of(redis))
