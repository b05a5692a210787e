"""Evasion with ART against a real gateway: success rate, queries, flagged samples and traces."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from attacks_support import AttackLab, read_jsonl, trace_ids, wait_until

from console.lab.attacks.evasion import run_evasion

log = logging.getLogger(__name__)


async def test_transfer_fgsm_is_flagged_into_the_sample_store_with_its_traces(
    attack_lab: AttackLab,
) -> None:
    report = await run_evasion(
        attack_lab.settings,
        "mallory-evade",
        model=attack_lab.model,
        method="fgsm",
        samples=30,
        eps=3.0,
        budget=200,
        duration=60.0,
        seed=4,
    )
    assert report.success_rate is not None and 0.0 <= report.success_rate <= 1.0
    assert report.queries_used <= 2 * report.samples and report.queries_used <= 200
    assert report.attacked > 20 and len(report.trace_ids) == report.attacked
    assert report.mean_linf is not None and report.mean_linf <= 3.0 + 1e-4
    log.info(f"evasion fgsm: success {report.success_rate}, queries {report.queries_used}")
    samples_dir = Path(attack_lab.settings.samples.path)
    traces_dir = Path(attack_lab.settings.traces.path)

    def flagged() -> list[dict[str, Any]]:
        rows = read_jsonl(samples_dir, "dt=*/samples-*.jsonl")
        return [r for r in rows if r["client"] == "mallory-evade" and r["flagged"]]

    assert wait_until(lambda: bool(flagged()), 5.0), "no flagged adversarial sample stored"
    assert wait_until(lambda: {r["trace_id"] for r in flagged()} <= trace_ids(traces_dir), 5.0)
    # Clean queries may be flagged too; the adversarial ones are those with the report's traces.
    adversarial = [r for r in flagged() if r["trace_id"] in report.trace_ids]
    assert adversarial, "no adversarial input was flagged"
    assert all(len(r["input"]) == 64 for r in adversarial)
    clean_flagged = len(flagged()) - len(adversarial)
    log.info(
        f"flagged: {len(adversarial)} of {report.attacked} adversarial, "
        f"{clean_flagged} of {report.samples} clean"
    )


async def test_hopskipjump_stays_within_its_query_budget(attack_lab: AttackLab) -> None:
    report = await run_evasion(
        attack_lab.settings,
        "mallory-hsj",
        model=attack_lab.model,
        method="hsj",
        samples=2,
        budget=400,
        duration=60.0,
        seed=5,
        hsj_max_iter=3,
    )
    assert report.queries_used <= 400
    assert report.success_rate is None or 0.0 <= report.success_rate <= 1.0
    assert report.eps is None and report.method == "hsj"
    log.info(f"evasion hsj: success {report.success_rate}, queries {report.queries_used}")
