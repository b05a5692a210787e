"""The benign-traffic service ``lab up`` starts: rounds of traffic, its own metrics of what
the clients saw, and a gateway that is not there (a round is skipped, the service lives on)."""

from __future__ import annotations

from attacks_support import AttackLab
from prometheus_client import generate_latest
from support import free_port

from console.lab.traffic_service import TrafficMetrics, run_rounds


def _samples(metrics: TrafficMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == name
    }


async def test_rounds_count_each_clients_answers_in_its_metrics(attack_lab: AttackLab) -> None:
    traffic = attack_lab.settings.traffic.model_copy(
        update={"clients": 2, "rate": 5.0, "duration_s": 3.0, "model": attack_lab.model}
    )
    settings = attack_lab.settings.model_copy(update={"traffic": traffic})
    metrics = TrafficMetrics()
    assert await run_rounds(settings, metrics) == 1
    requests = _samples(metrics, "aml_lab_traffic_requests_total")
    by_client = {dict(k)["client"]: v for k, v in requests.items() if dict(k)["outcome"] == "ok"}
    assert set(by_client) == {"alice", "bob"} and all(v > 0 for v in by_client.values())
    assert not [k for k in requests if dict(k)["outcome"] != "ok"]
    count = _samples(metrics, "aml_lab_traffic_request_duration_seconds_count")
    assert count[()] == sum(by_client.values())
    assert b"aml_lab_traffic_requests_total" in generate_latest(metrics.registry)


async def test_a_missing_gateway_skips_rounds_and_counts_them(attack_lab: AttackLab) -> None:
    settings = attack_lab.settings.model_copy(
        update={
            "gateway": attack_lab.settings.gateway.model_copy(
                update={"url": f"http://127.0.0.1:{free_port()}"}
            ),
            "traffic": attack_lab.settings.traffic.model_copy(update={"duration_s": 1.0}),
        }
    )
    metrics = TrafficMetrics()
    assert await run_rounds(settings, metrics) == 0
    assert _samples(metrics, "aml_lab_traffic_gateway_down_total")[()] >= 1
