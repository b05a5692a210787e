"""An attack blocked mid-run by the real block-client runbook; a bounded flood."""

from __future__ import annotations

import asyncio
import logging

from attacks_support import AttackLab
from support import run_cli

from console.lab.attacks.extraction import run_extraction
from console.lab.attacks.flood import run_flood

log = logging.getLogger(__name__)


async def test_block_client_runbook_mid_attack_turns_answers_into_403(
    attack_lab: AttackLab,
) -> None:
    client = "mallory-blocked"

    async def block_after(delay_s: float) -> float:
        await asyncio.sleep(delay_s)
        args = ["runbook", "run", "block-client", "-p", f"client={client}"]
        args += ["-p", "reason=extraction in progress (attack test)", "--yes"]
        proc = await asyncio.to_thread(run_cli, args, attack_lab.env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return delay_s

    report, _ = await asyncio.gather(
        run_extraction(
            attack_lab.settings,
            client,
            model=attack_lab.model,
            rate=30.0,
            budget=2000,
            duration=40.0,
            seed=6,
            give_up_after=10,
        ),
        # 1.5 s at 30 queries/s: ~45 answered before the runbook's CLI even starts, so "more
        # than 20 answered first" does not depend on how fast the CLI starts on a loaded host.
        block_after(1.5),
    )
    outcomes = report.outcomes
    assert outcomes["ok"] > 20 and outcomes["blocked"] >= 10, outcomes
    assert report.run.stopped == "blocked"  # gave up after 10 consecutive 403s
    # Once the block applied, nothing was served again (allow requests already in flight).
    assert outcomes["last_at_s"]["ok"] <= outcomes["first_at_s"]["blocked"] + 0.2, outcomes
    assert report.queries_blocked == outcomes["blocked"]


async def test_flood_is_bounded_and_reports_rate_and_latency(attack_lab: AttackLab) -> None:
    report = await run_flood(
        attack_lab.settings,
        "mallory-flood",
        model=attack_lab.model,
        concurrency=8,
        budget=150,
        duration=30.0,
        seed=8,
    )
    assert report.requests == 150 and report.run.stopped == "max_requests"
    assert report.outcomes["ok"] == 150
    assert report.achieved_rate > 5
    assert report.latency["p50_ms"] is not None and report.latency["p99_ms"] is not None
    assert report.latency["p50_ms"] <= report.latency["p99_ms"]
    log.info(f"flood: {report.achieved_rate} req/s, latency {report.latency}")


async def test_flood_stops_at_its_duration(attack_lab: AttackLab) -> None:
    report = await run_flood(
        attack_lab.settings,
        "mallory-flood-2",
        model=attack_lab.model,
        concurrency=4,
        budget=1_000_000,
        duration=3.0,
    )
    assert report.run.stopped == "duration" and report.run.duration_s < 6.0
    assert 0 < report.requests < 1_000_000
