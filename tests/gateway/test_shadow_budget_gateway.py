"""Shadow budgets at the lab gateway, in process, against the session lab's Redis and MLflow: a
shadow budget set with the real runbook answers every request and counts, in Redis and in
``aml_policy_shadow_refusals_total``, the ones it would have refused; the same runbook with
``mode=enforce`` shows those figures in its plan and then refuses from the budget's end."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis
from gateway_support import body, digits, metric_lines
from support import run_cli

from console.lab.seed import SeededModel

pytestmark = pytest.mark.asyncio

QPM = 5


async def _ready(gw: Any) -> None:
    for _ in range(400):
        if (await gw.client.get("/v2/health/ready")).status_code == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError((await gw.client.get("/v2/health/ready")).text)


def _runbook(gw: Any, *params: str) -> dict[str, Any]:
    args = ["runbook", "run", "lower-query-budget"]
    for param in params:
        args += ["-p", param]
    result = run_cli([*args, "--yes", "-o", "json"], gw.gw.env)
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _stay_inside_one_window(margin_s: float = 20.0) -> None:
    if 60 - time.time() % 60 < margin_s:
        time.sleep(60 - time.time() % 60 + 0.1)


async def test_shadow_budget_answers_all_counts_would_refuse_then_enforces(
    lab: Any, start_in_process: Any, seeded_model: SeededModel
) -> None:
    gw = await start_in_process(seeded_model.name)
    await _ready(gw)
    payload = body(digits(1))
    url = f"/v2/models/{seeded_model.name}/infer"
    prefix = gw.gw.settings.redis.key_prefix
    admin = redis.Redis.from_url(lab.settings.redis.url, decode_responses=True)
    try:
        shadow = _runbook(gw, "client=bob", f"qpm={QPM}", "mode=shadow")
        assert "shadow budget of 5 qpm" in shadow["plan"]["steps"][0]["summary"]
        record = json.loads(admin.get(f"{prefix}:policy:budget:bob") or "{}")
        assert record["mode"] == "shadow" and record["qpm"] == QPM
        _stay_inside_one_window()
        codes = [
            (await gw.client.post(url, json=payload, headers={"X-Client-Id": "bob"})).status_code
            for _ in range(12)
        ]
        assert codes == [200] * 12  # a shadow budget refuses nothing
        assert (
            await gw.client.post(url, json=payload, headers={"X-Client-Id": "carol"})
        ).status_code == 200

        totals_keys = admin.keys(f"{prefix}:policy:shadow:bob:*")
        assert len(totals_keys) == 1
        assert admin.hgetall(totals_keys[0]) == {"seen": "12", "would_refuse": "7"}
        metrics = (await gw.client.get("/metrics")).text
        assert metric_lines(metrics, "aml_policy_shadow_refusals_total") == [
            'aml_policy_shadow_refusals_total{client="bob"} 7.0'
        ]

        enforce = _runbook(gw, "client=bob", f"qpm={QPM}", "mode=enforce")
        summary = enforce["plan"]["steps"][0]["summary"]
        assert "shadow 5 qpm -> enforce 5 qpm" in summary, summary
        assert "shadow: would have refused 58% (7 of 12)" in summary, summary
        # What the change feed does on the announcement (its lag is tested elsewhere).
        gw.gateway.policy.invalidate("bob")
        enforced = [
            await gw.client.post(url, json=payload, headers={"X-Client-Id": "bob"})
            for _ in range(QPM + 1)
        ]
        assert [r.status_code for r in enforced] == [200] * QPM + [429]
        assert "budget of 5" in enforced[-1].json()["error"]
        # Enforced now: nothing more is counted against the shadow budget.
        assert admin.hgetall(totals_keys[0]) == {"seen": "12", "would_refuse": "7"}
    finally:
        admin.delete(*admin.keys(f"{prefix}:*") or ["-"])
        admin.close()
