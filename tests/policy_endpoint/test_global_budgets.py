"""Budgets counted in the session lab's Redis, shared by every enforcement point: two deciders
(two replicas, two lab gateway processes or two endpoints) admit ``qpm`` between them, a client
over its limit is refused from the near-cache without a Redis command (seen with MONITOR), and
a new window starts a new count. The clock is the deciders' injected wall clock, so the test
chooses the window instead of racing the real minute."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import redis
from policy_support import monitored

from console.adapters.budget_windows import KEY_TTL_S, WINDOW_S
from console.adapters.policy import PolicyStore
from console.adapters.policy_decisions import PolicyDecider
from console.adapters.redis_client import async_client

CLIENT = "bob"
QPM = 20


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _deciders(lab: Any, prefix: str, clock: Clock) -> list[PolicyDecider]:
    # A policy cache longer than the test: the only Redis commands left are budget counts.
    return [
        PolicyDecider(
            lab.settings.redis,
            prefix,
            cache_s=3600.0,
            failure_mode="open",
            default_qpm=None,
            clock=clock,
        )
        for _ in range(2)
    ]


def test_two_replicas_share_one_budget_and_the_near_cache_saves_round_trips(lab: Any) -> None:
    prefix = f"gb{secrets.token_hex(4)}"
    window_start = (int(1_900_000_000 // WINDOW_S) + secrets.randbelow(10_000)) * WINDOW_S
    clock = Clock(window_start + 5.0)
    replicas = _deciders(lab, prefix, clock)
    admin = redis.Redis.from_url(lab.settings.redis.url, decode_responses=True)
    key = f"{prefix}:budget-count:{CLIENT}:{window_start}"

    async def run() -> tuple[list[str], list[str], list[int], str]:
        writer = async_client(lab.settings.redis)
        await PolicyStore(writer, prefix).set_budget(CLIENT, QPM, "tester", "run-1")
        await writer.aclose()
        try:
            # Alternate between the replicas, as a load balancer would: 30 asked, 20 answered.
            first = [(await replicas[i % 2].decide(CLIENT)).verdict for i in range(30)]
            with monitored(lab.settings.redis.url, prefix) as log:
                cached = [(await replicas[i % 2].decide(CLIENT)).verdict for i in range(20)]
            retry = [(await r.decide(CLIENT)).retry_after_s for r in replicas]
            clock.now = window_start + WINDOW_S + 1.0  # the next window
            after = [(await replicas[i % 2].decide(CLIENT)).verdict for i in range(3)]
            return first + cached, after, retry, ",".join(log.commands)
        finally:
            for replica in replicas:
                await replica.aclose()

    try:
        verdicts, after, retry, commands = asyncio.run(run())
        assert verdicts[:30].count("allow") == QPM, verdicts[:30]
        assert verdicts[:QPM] == ["allow"] * QPM
        assert set(verdicts[QPM:]) == {"throttled"}
        # Each replica asked Redis once more (the count that went over), then never again.
        assert int(admin.get(key) or 0) == QPM + 2
        assert commands == "", f"refusals of a near-cached client sent: {commands}"
        assert retry == [55, 55]  # seconds to the end of the window
        assert 0 < admin.ttl(key) <= KEY_TTL_S
        assert after == ["allow"] * 3
        assert admin.get(f"{prefix}:budget-count:{CLIENT}:{window_start + WINDOW_S}") == "3"
    finally:
        admin.delete(*admin.keys(f"{prefix}:*") or ["-"])
        admin.close()


def test_a_raised_budget_asks_redis_again_and_a_client_without_one_costs_nothing(
    lab: Any,
) -> None:
    prefix = f"gb{secrets.token_hex(4)}"
    clock = Clock(2_000_000_000.0 + secrets.randbelow(10_000) * WINDOW_S + 1.0)
    replica, _ = _deciders(lab, prefix, clock)
    admin = redis.Redis.from_url(lab.settings.redis.url, decode_responses=True)

    async def run() -> tuple[list[str], list[str], str]:
        writer = async_client(lab.settings.redis)
        store = PolicyStore(writer, prefix)
        try:
            await store.set_budget(CLIENT, 2, "tester", "run-1")
            low = [(await replica.decide(CLIENT)).verdict for _ in range(3)]
            await store.set_budget(CLIENT, 5, "tester", "run-2")
            replica.invalidate(CLIENT)  # what the change feed does on the announcement
            raised = [(await replica.decide(CLIENT)).verdict for _ in range(3)]
            await replica.decide("alice")  # reads alice's (empty) policy once
            with monitored(lab.settings.redis.url, prefix) as log:
                for _ in range(10):
                    assert (await replica.decide("alice")).verdict == "allow"
            return low, raised, ",".join(log.commands)
        finally:
            await writer.aclose()
            await replica.aclose()

    try:
        low, raised, commands = asyncio.run(run())
        assert low == ["allow", "allow", "throttled"]
        # Counted 3 of 5 already: two more are admitted under the raised budget.
        assert raised == ["allow", "allow", "throttled"]
        assert commands == "", f"a client without a budget sent: {commands}"
    finally:
        admin.delete(*admin.keys(f"{prefix}:*") or ["-"])
        admin.close()
