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

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

import redis.asyncio as aioredis
from pydantic import AfterValidator, BaseModel, model_validator

from console.adapters.redis_client import endpoint_of, redis_call
from console.errors import BackendResponseError, ParameterError

CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
BLOCK_ID = re.compile(r"^blk-[0-9a-f]{12}$")
HARDENING_ID = re.compile(r"^hrd-[0-9a-f]{12}$")
SHADOW_TOTALS_TTL_S = 30 * 86_400
"""A shadow budget's totals outlive its last counted request by this long, then Redis drops
them (a shadow budget left behind costs no memory for ever)."""
T = TypeVar("T")
BudgetMode = Literal["enforce", "shadow"]
OutputMode = Literal["label-only", "top1", "rounded"]
"""What a hardened client's answers keep: the predicted class alone (ART's ClassLabels), the top
class with its probability, or every probability rounded to ``decimals`` (ART's Rounded)."""


def check_client_id(client: str) -> str:
    if not isinstance(client, str) or not CLIENT_ID.fullmatch(client):
        raise ParameterError(
            f"client id {client[:40]!r} is not acceptable: 1-128 characters of letters, digits "
            "and . _ : @ -, starting with a letter or digit"
            if isinstance(client, str)
            else "client id must be a string"
        )
    return client


def _client_id_value(value: str) -> str:
    try:
        return check_client_id(value)
    except ParameterError as exc:  # pydantic reports ValueErrors with their field path
        raise ValueError(str(exc)) from None


ClientId = Annotated[str, AfterValidator(_client_id_value)]
"""A client id checked before it is used in a key, a URL or a screen."""


class Block(BaseModel):
    client: str
    reason: str
    operator: str
    run_id: str
    created_at: datetime
    expires_at: datetime
    id: str = ""
    """``blk-<12 hex>``, derived from client, run and creation time: what a gateway may show
    the blocked client (the reason is the operator's, and stays inside). Blocks written before
    ids existed get the same derived id on every read."""

    @model_validator(mode="after")
    def _derived_id(self) -> Block:
        if not BLOCK_ID.fullmatch(self.id):
            seed = f"{self.client}|{self.run_id}|{self.created_at.isoformat()}"
            self.id = "blk-" + hashlib.sha256(seed.encode()).hexdigest()[:12]
        return self


class Budget(BaseModel):
    client: str
    qpm: int
    operator: str
    run_id: str
    set_at: datetime
    previous_qpm: int | None = None
    """The budget before the console first changed it (None: the gateway default)."""
    mode: BudgetMode = "enforce"
    """``shadow``: refuses nothing; the enforcement points count the requests it would have
    refused. Records written before modes existed are enforced."""
    enforced_qpm: int | None = None
    """Shadow budgets only: the enforced budget that stays in force while this one is tried
    (None: the gateway default)."""

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"

    @property
    def enforced(self) -> int | None:
        """The queries per minute this record enforces (None: the gateway default)."""
        return self.enforced_qpm if self.shadow else self.qpm

    @property
    def label(self) -> str:
        """``20 qpm`` or ``shadow 20 qpm``: how a screen names it."""
        return f"shadow {self.qpm} qpm" if self.shadow else f"{self.qpm} qpm"


OUTPUT_HEADER = re.compile(r"^(label-only|top1)$|^rounded;decimals=([0-6])$")


def parse_output(value: str) -> tuple[OutputMode, int] | None:
    """An ``X-AML-Output`` value -> (mode, decimals); None when empty (full answers). A value
    that is not one of ``Hardening.header``'s reads as ``label-only``: a hardening the upstream
    cannot read reduces the answer the most, never leaves it whole."""
    value = value.strip()
    if not value:
        return None
    match = OUTPUT_HEADER.fullmatch(value)
    if match is None:
        return "label-only", 0
    if match.group(2) is not None:
        return "rounded", int(match.group(2))
    return ("top1" if value == "top1" else "label-only"), 0


class Hardening(BaseModel):
    client: str
    mode: OutputMode
    decimals: int = 2
    """``rounded`` only: decimals kept in each probability."""
    operator: str
    run_id: str
    created_at: datetime
    expires_at: datetime
    id: str = ""
    """``hrd-<12 hex>``, derived like a block's id."""

    @model_validator(mode="after")
    def _derived_id(self) -> Hardening:
        if not HARDENING_ID.fullmatch(self.id):
            seed = f"{self.client}|{self.run_id}|{self.created_at.isoformat()}"
            self.id = "hrd-" + hashlib.sha256(seed.encode()).hexdigest()[:12]
        return self

    @property
    def header(self) -> str:
        """The ``X-AML-Output`` value: ``label-only``, ``top1`` or ``rounded;decimals=2``."""
        return f"rounded;decimals={self.decimals}" if self.mode == "rounded" else self.mode

    @property
    def label(self) -> str:
        """``label-only`` or ``rounded to 2 decimals``: how a screen names it."""
        return f"rounded to {self.decimals} decimals" if self.mode == "rounded" else self.mode


@dataclass(frozen=True)
class ShadowTotals:
    """What a shadow budget would have done since it was set, over every enforcement point."""

    seen: int
    would_refuse: int

    @property
    def share(self) -> float | None:
        return self.would_refuse / self.seen if self.seen else None

    def text(self) -> str:
        """``37% (1,204 of 3,250)``."""
        share = self.share
        percent = "-" if share is None else f"{share:.0%}"
        return f"{percent} ({self.would_refuse:,} of {self.seen:,})"


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
