"""Approval requests in Redis, shared by every console of a context: one JSON value per run
(``<prefix>:approval:<run_id>``), an index by creation time (``<prefix>:approvals``) and a
channel that says when one changed (``<prefix>:approvals:changed``).

Every change is a compare-and-set of the whole value (a Lua script), so two operators deciding
one request at once cannot both win: the second one's decision is refused, and it reads what
the first decided. A value is kept a week past its expiry, so a decided request can still be
shown, then Redis drops it; the audit log is the lasting record.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError

from console.adapters.redis_client import endpoint_of, redis_call
from console.errors import BackendResponseError, RunNotFound

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$")
ApprovalStatus = Literal["pending", "approved", "denied", "expired", "used"]
KEEP_AFTER_EXPIRY = timedelta(days=7)
LIST_LIMIT = 500
"""At most this many requests are read for a list, newest first."""
VALUE_LIMIT = 256 * 1024
"""A request is a few KiB; a bigger value is not one (and is not read into memory)."""
INDEX_KEEP = timedelta(days=14)
"""Index entries older than this are dropped (a week past the longest ttl)."""

# The value, unless it is too big to be a request (then a marker, and nothing is sent).
_READ_BOUNDED = """
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return '\0too-big' end
return redis.call('GET', KEYS[1])
"""
_TOO_BIG = "\0too-big"
# Replace the value only if it is still the one the caller read.
_COMPARE_AND_SET = """
local raw = redis.call('GET', KEYS[1])
if raw ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class ApprovalRecord(BaseModel):
    """One run's request for approval: what it would do, who asked, and what was decided."""

    run_id: str
    runbook: str
    runbook_path: str
    runbook_sha256: str
    tags: list[str] = Field(default_factory=list)
    target: str
    targets: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    """Public parameters (secrets redacted): what `runbook resume` plans again with."""
    secrets_mac: str = ""
    """HMAC of the secret parameters' values (never the values)."""
    plan: dict[str, Any] = Field(default_factory=dict)
    """The plan as shown to the requester (``RunPlan.to_dict``)."""
    fingerprints: dict[str, Any] = Field(default_factory=dict)
    """Step id -> the fingerprint of what was approved; a run whose state moved is stale."""
    requester: str
    environment: str
    context: str
    why: str
    """Why approval is required (the runbook's rule, or the context's)."""
    approvers: list[str] = Field(default_factory=list)
    created_at: datetime
    expires_at: datetime
    status: ApprovalStatus = "pending"
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    """A denial's reason."""
    used_by: str | None = None
    used_at: datetime | None = None
    request_mac: str = ""
    """HMAC of what was asked, under the context's audit key (``runbooks/approval_seal``)."""
    decision_mac: str = ""
    """HMAC of the decision, under the same key."""

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at

    def left_s(self, now: datetime | None = None) -> float:
        return max(0.0, (self.expires_at - (now or datetime.now(UTC))).total_seconds())


class ApprovalStore:
    def __init__(self, redis: aioredis.Redis, prefix: str = "aml") -> None:
        self._redis = redis
        self._prefix = prefix
        self._endpoint = endpoint_of(redis)
        self.skipped = 0
        self.total = 0

    def key(self, run_id: str) -> str:
        if not RUN_ID.fullmatch(run_id):
            raise RunNotFound(f"{run_id[:40]!r} is not a run id")
        return f"{self._prefix}:approval:{run_id}"

    @property
    def index_key(self) -> str:
        return f"{self._prefix}:approvals"

    @property
    def channel(self) -> str:
        return f"{self._prefix}:approvals:changed"

    def _keep_ms(self, record: ApprovalRecord) -> int:
        until = record.expires_at + KEEP_AFTER_EXPIRY - datetime.now(UTC)
        return max(1000, int(until.total_seconds() * 1000))

    async def create(self, record: ApprovalRecord) -> None:
        """Store a new request; refuses an id already in use."""
        raw = record.model_dump_json()
        created = await redis_call(
            lambda: self._redis.set(
                self.key(record.run_id), raw, nx=True, px=self._keep_ms(record)
            ),
            "store approval request",
            self._endpoint,
        )
        if not created:
            raise BackendResponseError(f"redis: approval request {record.run_id} exists", "redis")
        score = record.created_at.timestamp()
        await redis_call(
            lambda: self._redis.zadd(self.index_key, {record.run_id: score}),
            "index approval request",
            self._endpoint,
        )
        await self._announce(record.run_id)

    async def read(self, run_id: str) -> tuple[ApprovalRecord, str]:
        """The request and the raw value it was read from (for ``replace``)."""
        key = self.key(run_id)
        raw = await redis_call(
            lambda: self._redis.eval(_READ_BOUNDED, 1, key, VALUE_LIMIT),
            "read approval request",
            self._endpoint,
        )
        if raw == _TOO_BIG:
            raise BackendResponseError(f"redis: {key} is over {VALUE_LIMIT} bytes", "redis")
        if raw is None:
            raise RunNotFound(
                f"no approval request {run_id!r} (see `aml-console approvals`); a decided one "
                "is kept a week after it expires"
            )
        text = _text(raw)
        return self._parse(run_id, text), text

    async def replace(self, was: str, record: ApprovalRecord) -> bool:
        """Write ``record`` if the stored value is still ``was``; False if someone changed it."""
        new = record.model_dump_json()
        keep = self._keep_ms(record)
        done = await redis_call(
            lambda: self._redis.eval(_COMPARE_AND_SET, 1, self.key(record.run_id), was, new, keep),
            "update approval request",
            self._endpoint,
        )
        if int(done) == 1:
            await self._announce(record.run_id)
            return True
        return False

    async def delete(self, run_id: str) -> None:
        await redis_call(
            lambda: self._redis.delete(self.key(run_id)), "delete approval request", self._endpoint
        )
        await redis_call(
            lambda: self._redis.zrem(self.index_key, run_id), "unindex approval", self._endpoint
        )

    async def newest(self, limit: int = LIST_LIMIT) -> list[ApprovalRecord]:
        """The requests still kept, newest first. Ids whose value Redis dropped leave the
        index; values that are not requests (garbage, too big, another run's) are skipped and
        counted in ``skipped``; ``total`` is how many the index holds."""
        self.skipped = 0
        cutoff = (datetime.now(UTC) - INDEX_KEEP).timestamp()
        await redis_call(
            lambda: self._redis.zremrangebyscore(self.index_key, "-inf", cutoff),
            "prune approval index",
            self._endpoint,
        )
        self.total = int(
            await redis_call(
                lambda: self._redis.zcard(self.index_key), "count approvals", self._endpoint
            )
        )
        ids = await redis_call(
            lambda: self._redis.zrevrange(self.index_key, 0, limit - 1),
            "list approval requests",
            self._endpoint,
        )
        found: list[ApprovalRecord] = []
        gone: list[str] = []
        for member in ids:
            run_id = member.decode() if isinstance(member, bytes) else str(member)
            try:
                found.append((await self.read(run_id))[0])
            except RunNotFound:
                gone.append(run_id)
            except BackendResponseError:
                self.skipped += 1
        if gone:
            await redis_call(
                lambda: self._redis.zrem(self.index_key, *gone), "unindex approvals", self._endpoint
            )
        return found

    @contextlib.asynccontextmanager
    async def changes(self) -> AsyncIterator[Callable[[float], Awaitable[None]]]:
        """``await next_change(timeout_s)``: returns when any request of the context changes,
        or after ``timeout_s``; subscribed before the caller's first read, so no change that
        happens after that read is missed."""
        pubsub = self._redis.pubsub()
        await redis_call(lambda: pubsub.subscribe(self.channel), "subscribe", self._endpoint)

        async def next_change(timeout_s: float) -> None:
            await redis_call(
                lambda: pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout_s),
                "wait for approval changes",
                self._endpoint,
            )

        try:
            yield next_change
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _announce(self, run_id: str) -> None:
        await redis_call(
            lambda: self._redis.publish(self.channel, run_id), "announce approval", self._endpoint
        )

    def _parse(self, run_id: str, raw: str) -> ApprovalRecord:
        try:
            record = ApprovalRecord.model_validate_json(raw)
        except ValidationError:
            raise BackendResponseError(
                f"redis: approval request {self.key(run_id)} holds garbage", "redis"
            ) from None
        if record.run_id != run_id:
            raise BackendResponseError(
                f"redis: {self.key(run_id)} holds run {record.run_id[:40]!r}'s request, not "
                "its own: refused",
                "redis",
            )
        return record


def _text(raw: str | bytes) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
