"""Policy decisions from the Redis policy store the runbooks write (console.adapters.policy):
what every enforcement point asks per request, the lab gateway and the policy endpoint alike.

Per client, the block, budget and hardening are read with one MGET and cached for ``cache_s``
(at most 1 s); a message on ``<prefix>:policy:changes`` drops the client's entry at once.
Budgets are counted in Redis, shared by every enforcement point (console.adapters.budget_windows):
one round trip per admitted request of a client with a budget; a client already over its limit is
refused from a local near-cache until its window ends.

When Redis fails, the last known policy of a client still applies (stale-if-error: a block
read before the outage stays enforced until it expires); a client with no known policy is
served (``open``) or refused with ``unavailable`` (``closed``). A known budget whose count
cannot reach Redis is counted in this process alone (``open``: each replica then admits up
to ``qpm``) or refused (``closed``). Redis is not asked again for ``backoff_s`` after a
failure, so an outage costs requests nothing but a dictionary lookup.

A shadow budget refuses nothing: each request of its client is counted against it in Redis
(``GlobalBudgets.count_shadow``) before the enforced budget, if any, is applied, and the
decision says whether the shadow budget would have refused it (``shadow_refused``). A shadow
count that cannot reach Redis is skipped: a shadow budget never refuses, nor delays.

An admitted request's decision carries the client's output hardening, if one is in force
(``Decision.hardening``): what the enforcement point reduces the answer to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, TypeVar

from pydantic import ValidationError
from redis import exceptions as redis_errors

from console.adapters.budget_windows import GlobalBudgets, retry_after, window_of
from console.adapters.policy import Block, Budget, Hardening, PolicyStore
from console.adapters.redis_client import async_client, endpoint_of, redis_failure
from console.config import RedisSection
from console.errors import AdapterError

log = logging.getLogger(__name__)

P = TypeVar("P", Block, Budget, Hardening)
Verdict = Literal["allow", "blocked", "throttled", "unavailable"]
FailureMode = Literal["open", "closed"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    message: str = ""
    """For the operator's side (a gateway's error body, logs): a block's carries its reason."""
    retry_after_s: int = 0
    fail_open: bool = False
    """Served although the client's policy could not be read (``open``)."""
    block: Block | None = None
    shadow_refused: bool = False
    """The client's shadow budget, were it enforced, would have refused this request."""
    hardening: Hardening | None = None
    """Admitted requests only: the output hardening in force for the client."""


ALLOW = Decision("allow")


@dataclass
class _Entry:
    block: Block | None
    qpm: int | None
    fetched_at: float
    window: int = -1
    count: int = 0
    """This process's own count, used only while Redis cannot count (fail-open)."""
    known: bool = True
    """False: the store was down when this client first came; its policy is unknown."""
    shadow: Budget | None = None
    """The client's shadow budget, if it has one (``qpm`` is then the enforced budget)."""
    hardening: Hardening | None = None


EVICTION_SCAN = 4096
"""How far from the oldest end an eviction looks for an entry without policy; blocks and
budgets are few (operator-set), so one is found at once unless nearly all entries hold one."""


class PolicyDecider:
    def __init__(
        self,
        redis_config: RedisSection,
        prefix: str,
        *,
        cache_s: float,
        failure_mode: FailureMode,
        default_qpm: int | None,
        timeout_s: float = 0.25,
        backoff_s: float = 1.0,
        max_clients: int = 50_000,
        on_store_state: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``on_store_state(False)`` is called once per failed Redis call, ``(True)`` after a
        good one."""
        self._redis = async_client(redis_config, timeout_s=timeout_s)
        self.store = PolicyStore(self._redis, prefix)
        self.budgets = GlobalBudgets(self._redis, prefix, clock=clock, max_over=max_clients)
        self._redis_config = redis_config
        self._cache_s = cache_s
        self._failure_mode = failure_mode
        self._default_qpm = default_qpm
        self._backoff_s = backoff_s
        self._max_clients = max_clients
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._down_until = 0.0
        self._on_store_state = on_store_state
        self._clock = clock
        self.closing = False
        """Set at shutdown: the change feed stops even if a cancellation is swallowed."""

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def decide(self, client: str) -> Decision:
        now = time.monotonic()
        entry = self._entries.get(client)
        if entry is None or now - entry.fetched_at >= self._cache_s:
            fresh = await self._fetch(client, now)
            if fresh is not None:
                if entry is not None:
                    fresh.window, fresh.count = entry.window, entry.count
                entry = fresh
                self._remember(client, entry)
            elif entry is None:
                entry = _Entry(None, None, fetched_at=-math.inf, known=False)
                self._remember(client, entry)
        fail_open = not entry.known
        if fail_open and self._failure_mode == "closed":
            return Decision("unavailable", "policy store unavailable; refusing (fail-closed)")
        self._entries.move_to_end(client)
        block = entry.block
        if block is not None and block.expires_at > datetime.now(UTC):
            until = block.expires_at.isoformat(timespec="seconds")
            # Never the operator's reason: the client reads this (a 403's body).
            message = f"client {client} is blocked until {until} (block {block.id})"
            return Decision("blocked", message, block=block)
        qpm = entry.qpm if entry.qpm is not None else self._default_qpm
        shadow_refused = entry.shadow is not None and await self._count_shadow(
            client, entry.shadow, now
        )
        if qpm is None:
            decision = ALLOW if not fail_open else Decision("allow", fail_open=True)
        else:
            decision = await self._count(client, entry, qpm, now, fail_open)
        if shadow_refused:
            decision = replace(decision, shadow_refused=True)
        hardening = entry.hardening
        in_force = hardening is not None and hardening.expires_at > datetime.now(UTC)
        if decision.verdict == "allow" and in_force:
            decision = replace(decision, hardening=hardening)
        return decision

    async def _count_shadow(self, client: str, shadow: Budget, now: float) -> bool:
        if now < self._down_until:
            return False
        try:
            return await self.budgets.count_shadow(
                client, shadow.qpm, self.store.shadow_key(shadow)
            )
        except AdapterError as exc:
            self._store_down(now, exc)
            return False

    async def _count(
        self, client: str, entry: _Entry, qpm: int, now: float, fail_open: bool
    ) -> Decision:
        over = f"client {client} is over its budget of {qpm} queries per minute"
        cached = self.budgets.refused(client, qpm)
        if cached is not None:
            return Decision("throttled", over, retry_after_s=cached.retry_after_s)
        if now >= self._down_until:
            try:
                answer = await self.budgets.count(client, qpm)
            except AdapterError as exc:
                self._store_down(now, exc)
            else:
                self._store_up()
                if not answer.admitted:
                    return Decision("throttled", over, retry_after_s=answer.retry_after_s)
                return Decision("allow", fail_open=fail_open)
        if self._failure_mode == "closed":
            return Decision("unavailable", "budget counter unavailable; refusing (fail-closed)")
        wall = self._clock()
        window = window_of(wall)
        if entry.window != window:
            entry.window, entry.count = window, 0
        entry.count += 1
        if entry.count > qpm:
            return Decision("throttled", over, retry_after_s=retry_after(wall))
        return Decision("allow", fail_open=fail_open)

    def invalidate(self, client: str | None = None) -> None:
        """Forget the cached policy of ``client`` (all clients when None) and whether it is
        over its budget; the shared counts stay in Redis."""
        targets = [client] if client is not None else list(self._entries)
        for name in targets:
            entry = self._entries.get(name)
            if entry is not None:
                entry.fetched_at = -math.inf
        self.budgets.forget(client)

    async def _fetch(self, client: str, now: float) -> _Entry | None:
        if now < self._down_until:
            return None
        keys = [
            self.store.block_key(client),
            self.store.budget_key(client),
            self.store.hardening_key(client),
        ]
        try:
            raw_block, raw_budget, raw_hardening = await self._redis.mget(keys)
        except (redis_errors.RedisError, OSError) as exc:
            self._store_down(now, redis_failure(exc, "read policy", endpoint_of(self._redis)))
            return None
        self._store_up()
        budget = _parse(Budget, raw_budget, keys[1])
        return _Entry(
            _parse(Block, raw_block, keys[0]),
            None if budget is None else budget.enforced,
            fetched_at=now,
            shadow=budget if budget is not None and budget.shadow else None,
            hardening=_parse(Hardening, raw_hardening, keys[2]),
        )

    def _remember(self, client: str, entry: _Entry) -> None:
        self._entries[client] = entry
        self._entries.move_to_end(client)
        while len(self._entries) > self._max_clients:
            self._evict_one()

    def _evict_one(self) -> None:
        """Drop the least recent entry that holds no policy. While the store is down, a flood
        of new ids adds an entry each; evicting plainly by age would let it push out a
        blocked client's cached block, which is then allowed as unknown (fail-open)."""
        for scanned, (name, entry) in enumerate(self._entries.items()):
            if scanned >= EVICTION_SCAN:
                break
            if (
                entry.block is None
                and entry.qpm is None
                and entry.shadow is None
                and (entry.hardening is None)
            ):
                del self._entries[name]
                return
        self._entries.popitem(last=False)

    def _store_down(self, now: float, exc: BaseException) -> None:
        if self._down_until <= now:
            log.warning(
                "policy store unavailable (%s); %s for %.1f s",
                _line(exc),
                f"fail-{self._failure_mode}",
                self._backoff_s,
            )
        self._down_until = now + self._backoff_s
        if self._on_store_state is not None:
            self._on_store_state(False)

    def _store_up(self) -> None:
        if self._on_store_state is not None:
            self._on_store_state(True)

    # Background tasks ---------------------------------------------------------------------

    async def follow_changes(self) -> None:
        """Drop cached policies as the runbooks announce changes; reconnect with backoff."""
        while not self.closing:
            listener = async_client(self._redis_config)
            pubsub = listener.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.store.changes_channel)
                # Changes may have been missed while we were not subscribed.
                self.invalidate()
                while not self.closing:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_change(message.get("data"))
            except (redis_errors.RedisError, OSError) as exc:
                lost = redis_failure(exc, "follow policy changes", endpoint_of(listener))
                log.debug("policy change feed lost (%s); reconnecting", lost)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await listener.aclose()
            await asyncio.sleep(1.0)

    def _on_change(self, data: object) -> None:
        try:
            client = json.loads(str(data)).get("client")
        except (ValueError, AttributeError):
            client = None
        self.invalidate(client if isinstance(client, str) else None)

    async def snapshot(self) -> tuple[dict[str, float], dict[str, int], dict[str, int]] | None:
        """Blocked clients (seconds left), enforced budgets and shadow budgets, for the policy
        gauges; None if down."""
        try:
            blocks = await self.store.list_blocks()
            budgets = await self.store.list_budgets()
        except AdapterError as exc:
            self._store_down(time.monotonic(), exc)
            return None
        self._store_up()
        now = datetime.now(UTC)
        blocked = {
            b.client: (b.expires_at - now).total_seconds() for b in blocks if b.expires_at > now
        }
        enforced = {b.client: b.enforced for b in budgets}
        shadows = {b.client: b.qpm for b in budgets if b.shadow}
        return blocked, {c: q for c, q in enforced.items() if q is not None}, shadows


def _parse(model: type[P], raw: str | bytes | None, key: str) -> P | None:
    if raw is None:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        log.error("%s holds something that is not a valid %s; ignored", key, model.__name__)
        return None


def _line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
