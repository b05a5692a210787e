"""Shadow budgets: set with the real ``lower-query-budget mode=shadow`` runbook, they refuse
nothing; every enforcement point counts, in the session lab's Redis, the requests they would
have refused, so replicas agree; ``get mitigations`` reads the share, and the same runbook with
``mode=enforce`` turns the shadow budget into an enforced one."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import redis
from policy_support import endpoint_env, serving, stay_inside_one_window, wait_until
from support import run_cli

from console.adapters.budget_windows import WINDOW_S
from console.adapters.policy import PolicyStore
from console.adapters.policy_decisions import PolicyDecider
from console.adapters.redis_client import async_client

QPM = 5


def _metric(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_the_endpoint_answers_every_request_and_counts_what_it_would_refuse(
    lab: Any, tmp_path: Path
) -> None:
    env, prefix = endpoint_env(lab.config_path, tmp_path / "run")
    admin = redis.Redis.from_url(lab.settings.redis.url, decode_responses=True)
    try:
        with serving(env, prefix, tmp_path) as endpoint, endpoint.client() as http:
            endpoint.runbook("lower-query-budget", client="bob", qpm=str(QPM), mode="shadow")
            stay_inside_one_window(15.0)
            codes = [
                http.get("/v1/decision", headers={"X-Client-Id": "bob"}).status_code
                for _ in range(12)
            ]
            assert codes == [200] * 12, codes
            nginx = http.get("/v1/decision/nginx", headers={"X-Client-Id": "carol"})
            assert nginx.status_code == 200

            totals_keys = admin.keys(f"{prefix}:policy:shadow:bob:*")
            assert len(totals_keys) == 1
            assert admin.hgetall(totals_keys[0]) == {"seen": "12", "would_refuse": "7"}
            text = http.get("/metrics").text
            assert _metric(text, 'aml_policy_shadow_refusals_total{client="bob"}') == 7
            assert 'aml_policy_shadow_refusals_total{client="carol"}' not in text
            assert _metric(text, 'aml_policy_decisions_total{outcome="budget"}') == 0

            listed = run_cli(["get", "mitigations", "-o", "json"], env)
            assert listed.returncode == 0, listed.stderr
            rows = [r for r in json.loads(listed.stdout) if r["kind"] == "budget"]
            assert len(rows) == 1
            row = rows[0]
            assert (row["client"], row["qpm"], row["mode"]) == ("bob", QPM, "shadow")
            assert (row["shadow_seen"], row["shadow_would_refuse"]) == (12, 7)
            assert abs(row["shadow_share"] - 7 / 12) < 1e-9
            table = run_cli(["get", "mitigations"], env)
            assert "shadow 5 qpm: would have refused 58% (7 of 12)" in table.stdout

            # The same runbook enforces it; the change feed brings it to the endpoint.
            endpoint.runbook("lower-query-budget", client="bob", qpm=str(QPM), mode="enforce")
            lag = wait_until(
                lambda: http.get("/v1/decision", headers={"X-Client-Id": "bob"}).status_code == 429,
                5.0,
            )
            assert lag is not None, "the enforced budget never refused"
            record = json.loads(admin.get(f"{prefix}:policy:budget:bob") or "{}")
            assert (record["mode"], record["qpm"], record["previous_qpm"]) == ("enforce", 5, None)
    finally:
        admin.delete(*admin.keys(f"{prefix}:*") or ["-"])
        admin.close()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_two_replicas_share_the_shadow_count_and_enforcing_refuses_from_the_sixth(
    lab: Any,
) -> None:
    """Two deciders, as two replicas behind a load balancer, on the injected wall clock (the
    test picks the window instead of racing the real minute)."""
    prefix = f"sb{secrets.token_hex(4)}"
    window_start = (int(1_900_000_000 // WINDOW_S) + secrets.randbelow(10_000)) * WINDOW_S
    clock = Clock(window_start + 5.0)
    replicas = [
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
    admin = redis.Redis.from_url(lab.settings.redis.url, decode_responses=True)

    async def run() -> tuple[list[Any], list[Any], str]:
        writer = async_client(lab.settings.redis)
        store = PolicyStore(writer, prefix)
        try:
            shadow = await store.set_budget("bob", QPM, "tester", "run-1", mode="shadow")
            tried = [await replicas[i % 2].decide("bob") for i in range(12)]
            await store.set_budget("bob", QPM, "tester", "run-2")
            for replica in replicas:
                replica.invalidate("bob")  # what the change feed does on the announcement
            enforced = [await replicas[i % 2].decide("bob") for i in range(QPM + 1)]
            return tried, enforced, store.shadow_key(shadow)
        finally:
            await writer.aclose()
            for replica in replicas:
                await replica.aclose()

    try:
        tried, enforced, totals_key = asyncio.run(run())
        assert [d.verdict for d in tried] == ["allow"] * 12
        # Counted in one shared window: the 6th to the 12th would have been refused, whichever
        # replica answered them (each answered 6).
        assert [d.shadow_refused for d in tried] == [False] * QPM + [True] * 7
        assert admin.get(f"{prefix}:shadow-count:bob:{window_start}") == "12"
        assert admin.hgetall(totals_key) == {"seen": "12", "would_refuse": "7"}
        assert admin.ttl(totals_key) > 86_400
        assert [d.verdict for d in enforced] == ["allow"] * QPM + ["throttled"]
        assert not any(d.shadow_refused for d in enforced)
        assert admin.hgetall(totals_key) == {"seen": "12", "would_refuse": "7"}
    finally:
        admin.delete(*admin.keys(f"{prefix}:*") or ["-"])
        admin.close()


def test_the_endpoint_names_at_most_max_shadow_clients() -> None:
    """The bound on the endpoint's client label, beyond what shadow budgets normally reach."""
    from prometheus_client import generate_latest

    from console.policy_endpoint.metrics import MAX_SHADOW_CLIENTS, EndpointMetrics

    metrics = EndpointMetrics()
    for index in range(MAX_SHADOW_CLIENTS + 5):
        metrics.shadow_refusal(f"c{index}")
    metrics.shadow_refusal("c0")
    text = generate_latest(metrics.registry).decode()
    series = [
        line for line in text.splitlines() if line.startswith("aml_policy_shadow_refusals_total")
    ]
    assert len(series) == MAX_SHADOW_CLIENTS + 1
    assert _metric(text, 'aml_policy_shadow_refusals_total{client="other"}') == 5
    assert _metric(text, 'aml_policy_shadow_refusals_total{client="c0"}') == 2
