"""A Redis outage in fail-open mode keeps a blocked client blocked from the cache (stale if
error); a flood of new client ids during the outage must not push that block out of the
bounded cache (the review's finding: 50,001 ids unblocked it). A Redis of the test's own,
killed for real."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from policy_support import private_redis

from console.adapters.policy import PolicyStore
from console.adapters.policy_decisions import PolicyDecider
from console.adapters.redis_client import async_client
from console.config import RedisSection


def test_a_flood_of_new_ids_in_an_outage_does_not_evict_a_block(tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as server:
        section = RedisSection(url=server.url, key_prefix="flood")

        async def run() -> tuple[str, str, str]:
            writer = async_client(section)
            await PolicyStore(writer, "flood").block(
                "mallory", timedelta(hours=1), "extraction", "tester", "run-1"
            )
            await writer.aclose()
            decider = PolicyDecider(
                section,
                "flood",
                cache_s=0.0,
                failure_mode="open",
                default_qpm=None,
                backoff_s=60.0,
                max_clients=50,
            )
            try:
                before = (await decider.decide("mallory")).verdict
                server.stop()
                during = (await decider.decide("mallory")).verdict
                for i in range(500):  # ten times what the cache holds
                    await decider.decide(f"fresh-{i}")
                after = (await decider.decide("mallory")).verdict
                return before, during, after
            finally:
                await decider.aclose()

        before, during, after = asyncio.run(run())
    assert (before, during, after) == ("blocked", "blocked", "blocked")
