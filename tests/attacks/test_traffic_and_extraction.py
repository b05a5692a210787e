"""Benign traffic and the extraction attack against a real gateway process."""

from __future__ import annotations

import asyncio
import logging

from attacks_support import AttackLab, metric_values

from console.lab.attacks.extraction import run_extraction
from console.lab.traffic import run_benign

log = logging.getLogger(__name__)


async def test_benign_traffic_is_all_ok_and_each_client_is_in_the_metrics(
    attack_lab: AttackLab,
) -> None:
    report = await run_benign(attack_lab.settings, 3, 6.0, 3.0, seed=1, model=attack_lab.model)
    total = report.total
    assert total["requests"] > 20 and total["outcomes"]["ok"] == total["requests"]
    assert set(report.clients) == {"alice", "bob", "carol"}
    assert len(set(report.rates.values())) == 3  # varied rates
    requests = metric_values(attack_lab.url, "aml_requests_total", attack_lab.model)
    for name, row in report.clients.items():
        assert row["outcomes"]["blocked"] == row["outcomes"]["throttled"] == 0
        assert requests.get(name, 0) >= row["requests"], (name, requests)


async def test_benign_traffic_is_reproducible_from_its_seed(attack_lab: AttackLab) -> None:
    a = await run_benign(attack_lab.settings, 4, 2.0, 1.0, seed=7, model=attack_lab.model)
    b = await run_benign(attack_lab.settings, 4, 2.0, 1.0, seed=7, model=attack_lab.model)
    assert a.rates == b.rates


async def test_extraction_scores_far_above_benign_and_yields_a_surrogate(
    attack_lab: AttackLab,
) -> None:
    benign, attack = await asyncio.gather(
        run_benign(attack_lab.settings, 3, 6.0, 7.0, seed=2, model=attack_lab.model),
        run_extraction(
            attack_lab.settings,
            "mallory-extract",
            model=attack_lab.model,
            rate=60.0,
            budget=400,
            duration=10.0,
            seed=3,
        ),
    )
    assert benign.total["outcomes"]["ok"] == benign.total["requests"]
    # A loaded 2-core machine may not reach the budget in time: either bound may stop it.
    assert attack.run.stopped in ("max_requests", "duration")
    assert 150 <= attack.queries_answered == attack.queries_sent <= 400, attack
    scores = metric_values(attack_lab.url, "aml_client_extraction_score", attack_lab.model)
    attacker = scores["mallory-extract"]
    benign_scores = [scores[name] for name in benign.clients]
    log.info(f"extraction score: attacker {attacker:.3f}, benign {benign_scores}")
    assert all(s > 0 for s in benign_scores), scores  # each benign client has a score
    assert attacker > 0.7 and attacker > max(benign_scores) + 0.4, scores
    assert attack.surrogate_agreement is not None
    assert 0.0 <= attack.surrogate_agreement <= 1.0
    assert attack.surrogate_agreement > 0.25, attack  # chance is 0.1 (10 classes)
    assert "ONNX" in attack.agreement_measured_on
    assert attack.served_version is not None
