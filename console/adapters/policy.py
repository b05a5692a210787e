"""The policy store in Redis: client blocks (with expiry), per-client query budgets and output
hardenings (with expiry).

Key layout, the shape an Envoy/Kong-style rate-limit service or the lab gateway reads:

    <prefix>:policy:block:<client>    JSON Block, with a Redis TTL equal to the block's expiry
    <prefix>:policy:budget:<client>   JSON Budget (queries per minute; mode enforce|shadow)
    <prefix>:policy:shadow:<client>:<set_at, epoch us>
                                      hash {seen, would_refuse}: a shadow budget's totals since
                                      it was set, written by the enforcement points
    <prefix>:policy:hardening:<client>
                                      JSON Hardening (output mode), with a Redis TTL equal to
                                      its expiry
    <prefix>:policy:changes           pub/sub channel: {"kind": "block"|"budget"|"hardening",
                                      "client": ...}

Gateways cache policies for at most a second, or subscribe to the channel.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis.asyncio as aioredis

from console.adapters.policy_records import (
    BLOCK_ID,
    CLIENT_ID,
    HARDENING_ID,
    OUTPUT_HEADER,
    Block,
    Budget,
    BudgetMode,
    ClientId,
    Hardening,
    OutputMode,
    ShadowTotals,
    check_client_id,
    parse_output,
)
from console.adapters.redis_client import endpoint_of, redis_call
from console.errors import BackendResponseError

SHADOW_TOTALS_TTL_S = 30 * 86_400
"""A shadow budget's totals outlive its last counted request by this long, then Redis drops
them (a shadow budget left behind costs no memory for ever)."""
T = TypeVar("T")


class PolicyStore:
    """Read and write client blocks and budgets."""

    def __init__(self, redis: aioredis.Redis, prefix: str = "aml") -> None:
        self._redis = redis
        self._prefix = prefix
        self._endpoint = endpoint_of(redis)

    @property
    def changes_channel(self) -> str:
        return f"{self._prefix}:policy:changes"

    def block_key(self, client: str) -> str:
        return f"{self._prefix}:policy:block:{check_client_id(client)}"

    def budget_key(self, client: str) -> str:
        return f"{self._prefix}:policy:budget:{check_client_id(client)}"

    def hardening_key(self, client: str) -> str:
        return f"{self._prefix}:policy:hardening:{check_client_id(client)}"

    def shadow_key(self, budget: Budget) -> str:
        """The totals of one shadow budget: a new shadow budget starts new totals, and one put
        back by a compensation finds its own again."""
        micros = int(budget.set_at.timestamp() * 1_000_000)
        return f"{self._prefix}:policy:shadow:{check_client_id(budget.client)}:{micros}"

    async def shadow_totals(self, budgets: list[Budget]) -> dict[str, ShadowTotals]:
        """client -> totals of its shadow budget, for the shadow budgets in ``budgets``."""
        shadows = [b for b in budgets if b.shadow]
        if not shadows:
            return {}

        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for budget in shadows:
                    pipe.hmget(self.shadow_key(budget), ["seen", "would_refuse"])
                return await pipe.execute()

        replies = await redis_call(read, "read shadow totals", self._endpoint)
        return {
            budget.client: ShadowTotals(_count(reply[0]), _count(reply[1]))
            for budget, reply in zip(shadows, replies, strict=True)
        }

    async def get_block(self, client: str) -> Block | None:
        raw = await redis_call(
            lambda: self._redis.get(self.block_key(client)), "read block", self._endpoint
        )
        return _parse(Block, raw, self.block_key(client))

    async def block(
        self, client: str, ttl: timedelta, reason: str, operator: str, run_id: str
    ) -> Block:
        now = datetime.now(UTC)
        block = Block(
            client=client,
            reason=reason,
            operator=operator,
            run_id=run_id,
            created_at=now,
            expires_at=now + ttl,
        )
        millis = max(1, int(ttl.total_seconds() * 1000))
        key = self.block_key(client)
        await redis_call(
            lambda: self._redis.set(key, block.model_dump_json(), px=millis),
            "write block",
            self._endpoint,
        )
        await self._announce("block", client)
        return block

    async def restore_block(self, block: Block) -> None:
        """Put back a block exactly as it was (compensation), if it has not expired since."""
        remaining = block.expires_at - datetime.now(UTC)
        if remaining.total_seconds() <= 0:
            await self.unblock(block.client)
            return
        key = self.block_key(block.client)
        millis = max(1, int(remaining.total_seconds() * 1000))
        await redis_call(
            lambda: self._redis.set(key, block.model_dump_json(), px=millis),
            "restore block",
            self._endpoint,
        )
        await self._announce("block", block.client)

    async def unblock(self, client: str) -> bool:
        key = self.block_key(client)
        removed = await redis_call(lambda: self._redis.delete(key), "remove block", self._endpoint)
        await self._announce("block", client)
        return bool(removed)

    async def get_budget(self, client: str) -> Budget | None:
        raw = await redis_call(
            lambda: self._redis.get(self.budget_key(client)), "read budget", self._endpoint
        )
        return _parse(Budget, raw, self.budget_key(client))

    async def set_budget(
        self,
        client: str,
        qpm: int,
        operator: str,
        run_id: str,
        previous_qpm: int | None = None,
        *,
        mode: BudgetMode = "enforce",
        enforced_qpm: int | None = None,
    ) -> Budget:
        budget = Budget(
            client=client,
            qpm=qpm,
            operator=operator,
            run_id=run_id,
            set_at=datetime.now(UTC),
            previous_qpm=previous_qpm,
            mode=mode,
            enforced_qpm=enforced_qpm if mode == "shadow" else None,
        )
        key = self.budget_key(client)
        await redis_call(
            lambda: self._redis.set(key, budget.model_dump_json()), "write budget", self._endpoint
        )
        await self._announce("budget", client)
        return budget

    async def restore_budget(self, budget: Budget | None, client: str) -> None:
        """Put back the budget as it was: a previous value, or none at all (the default)."""
        key = self.budget_key(client)
        if budget is None:
            await redis_call(lambda: self._redis.delete(key), "remove budget", self._endpoint)
        else:
            await redis_call(
                lambda: self._redis.set(key, budget.model_dump_json()),
                "restore budget",
                self._endpoint,
            )
        await self._announce("budget", client)

    async def get_hardening(self, client: str) -> Hardening | None:
        key = self.hardening_key(client)
        raw = await redis_call(lambda: self._redis.get(key), "read hardening", self._endpoint)
        return _parse(Hardening, raw, key)

    async def harden(
        self,
        client: str,
        mode: OutputMode,
        decimals: int,
        ttl: timedelta,
        operator: str,
        run_id: str,
    ) -> Hardening:
        now = datetime.now(UTC)
        hardening = Hardening(
            client=client,
            mode=mode,
            decimals=decimals,
            operator=operator,
            run_id=run_id,
            created_at=now,
            expires_at=now + ttl,
        )
        await self.restore_hardening(hardening)
        return hardening

    async def restore_hardening(self, hardening: Hardening) -> None:
        """Write ``hardening`` with a TTL up to its expiry (compensation puts one back so);
        one that has expired meanwhile is removed instead."""
        remaining = hardening.expires_at - datetime.now(UTC)
        if remaining.total_seconds() <= 0:
            await self.unharden(hardening.client)
            return
        key = self.hardening_key(hardening.client)
        millis = max(1, int(remaining.total_seconds() * 1000))
        await redis_call(
            lambda: self._redis.set(key, hardening.model_dump_json(), px=millis),
            "write hardening",
            self._endpoint,
        )
        await self._announce("hardening", hardening.client)

    async def unharden(self, client: str) -> bool:
        key = self.hardening_key(client)
        removed = await redis_call(
            lambda: self._redis.delete(key), "remove hardening", self._endpoint
        )
        await self._announce("hardening", client)
        return bool(removed)

    async def list_hardenings(self) -> list[Hardening]:
        return await self._list(f"{self._prefix}:policy:hardening:*", Hardening)

    async def list_blocks(self) -> list[Block]:
        return await self._list(f"{self._prefix}:policy:block:*", Block)

    async def list_budgets(self) -> list[Budget]:
        return await self._list(f"{self._prefix}:policy:budget:*", Budget)

    async def _list(self, pattern: str, model: type[T]) -> list[T]:
        keys: list[str] = []

        async def scan() -> None:
            async for key in self._redis.scan_iter(match=pattern, count=500):
                keys.append(key)

        await redis_call(scan, "scan policies", self._endpoint)
        if not keys:
            return []
        values = await redis_call(lambda: self._redis.mget(keys), "read policies", self._endpoint)
        found = [_parse(model, raw, key) for key, raw in zip(keys, values, strict=True)]
        return [item for item in found if item is not None]

    async def _announce(self, kind: str, client: str) -> None:
        message = json.dumps({"kind": kind, "client": client})
        await redis_call(
            lambda: self._redis.publish(self.changes_channel, message), "publish", self._endpoint
        )


def _count(raw: Any) -> int:
    try:
        return max(0, int(raw))
    except (TypeError, ValueError):
        return 0


def _parse(model: type[T], raw: Any, key: str) -> T | None:
    if raw is None:
        return None
    try:
        return model.model_validate_json(raw)  # type: ignore[attr-defined, no-any-return]
    except ValueError:
        raise BackendResponseError(
            f"redis: {key} holds something that is not a valid {model.__name__}", "redis"
        ) from None


__all__ = [
    "BLOCK_ID",
    "Block",
    "Budget",
    "BudgetMode",
    "CLIENT_ID",
    "ClientId",
    "HARDENING_ID",
    "Hardening",
    "OUTPUT_HEADER",
    "OutputMode",
    "PolicyStore",
    "SHADOW_TOTALS_TTL_S",
    "ShadowTotals",
    "check_client_id",
    "parse_output",
]
