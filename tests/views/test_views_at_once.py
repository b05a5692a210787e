"""Each view's fetch starts all its reads at once, and keeps its error semantics: the policy
store and the registry fail beside the data, the query engine and Alertmanager fail the view.

The sources here are stand-ins that hold every call until the view has started all of them
(a view that awaited one read before starting the next would never get past the first); the
views on the real stack are tested in tests/tui."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.adapters.alertmanager import Alert, Silence
from console.adapters.backends import Backends
from console.adapters.gateway_state import GatewayClients, LabelSlots, UnlabelledClient
from console.adapters.mlflow import ModelVersion, RegisteredModel
from console.adapters.policy import Block, Budget, Hardening
from console.adapters.prometheus import QueryResult, RangeResult, Sample
from console.config import Settings
from console.errors import BackendUnavailable, ConsoleError
from console.views import queries as q
from console.views.alerts import fetch_alerts
from console.views.clients import fetch_clients
from console.views.mitigations import fetch_mitigations
from console.views.models import INSTANT_UNION, fetch_models, labelled_union

NOW = datetime.now(UTC)


class Gate:
    """Lets calls through once ``expected`` of them are waiting; ``fail`` names calls that
    then raise BackendUnavailable, ``slow`` calls that never finish (until cancelled)."""

    def __init__(
        self, expected: int, fail: frozenset[str] = frozenset(), slow: frozenset[str] = frozenset()
    ) -> None:
        self.expected = expected
        self.fail, self.slow = fail, slow
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self._all_in = asyncio.Event()

    async def enter(self, name: str) -> None:
        self.started.append(name)
        if len(self.started) >= self.expected:
            self._all_in.set()
        await asyncio.wait_for(self._all_in.wait(), 2)  # a view reading in turn times out here
        if name in self.slow:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.append(name)
                raise
        if name in self.fail:
            raise BackendUnavailable(f"{name} is down", name.split(".")[0])


def _vector(metric: dict[str, str], value: float) -> QueryResult:
    return QueryResult(
        result_type="vector", samples=[Sample(metric=metric, timestamp=0, value=value)]
    )


class Prometheus:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def query(self, expr: str, time: Any = None) -> QueryResult:
        await self.gate.enter(f"prometheus.{expr}")
        answer = _vector({"model": "digits", "client": "alice"}, 1.5)
        if expr == INSTANT_UNION:  # the Models view's panels in one query
            return labelled_union([answer] * len(q.MODEL_INSTANT))
        return answer

    async def query_range(self, expr: str, start: float, end: float, step: float) -> RangeResult:
        await self.gate.enter(f"prometheus.range.{expr}")
        return RangeResult(series=[])


class Policy:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def list_blocks(self) -> list[Block]:
        await self.gate.enter("policy.blocks")
        return [
            Block(
                client="alice",
                reason="r",
                operator="o",
                run_id="x",
                created_at=NOW,
                expires_at=NOW + timedelta(minutes=5),
            )
        ]

    async def list_budgets(self) -> list[Budget]:
        await self.gate.enter("policy.budgets")
        return [Budget(client="alice", qpm=60, operator="o", run_id="x", set_at=NOW)]

    async def list_hardenings(self) -> list[Hardening]:
        await self.gate.enter("policy.hardenings")
        expires = NOW + timedelta(minutes=5)
        return [
            Hardening(
                client="bob",
                mode="top1",
                operator="o",
                run_id="x",
                created_at=NOW,
                expires_at=expires,
            )
        ]


class Registry:
    def __init__(self, gate: Gate, missing: frozenset[str] = frozenset()) -> None:
        self.gate, self.missing = gate, missing

    async def get_model(self, name: str) -> RegisteredModel | None:
        await self.gate.enter(f"registry.model.{name}")
        return None if name in self.missing else RegisteredModel(name=name, aliases={"a": "1"})

    async def list_versions(self, name: str) -> list[ModelVersion]:
        await self.gate.enter(f"registry.versions.{name}")
        return [ModelVersion(name=name, version="1", status="READY")]


class GatewayState:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def unlabelled(self, limit: int = 50) -> GatewayClients:
        await self.gate.enter("gateway.clients")
        hidden = UnlabelledClient(
            client="mallory",
            risk=0.9,
            extraction={"digits": 0.9},
            flag_rate=0,
            refused_share=0,
            answered_rate=20,
            idle_s=1,
        )
        return GatewayClients(
            label_slots=LabelSlots(capacity=2, used=2), tracked=3, unlabelled=[hidden]
        )


class Alertmanager:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def alerts(self) -> list[Alert]:
        await self.gate.enter("alertmanager.alerts")
        return [Alert(fingerprint="f", labels={"alertname": "A", "severity": "critical"})]

    async def silences(self) -> list[Silence]:
        await self.gate.enter("alertmanager.silences")
        return []


def _sources(tmp_path: Path, gate: Gate, models: list[str] | None = None, **kw: Any) -> Backends:
    settings = Settings(
        run_dir=tmp_path,
        models={"served": models or ["digits"]},  # type: ignore[arg-type]
        audit={"hmac_key": "k" * 32},  # type: ignore[arg-type]
    )
    return Backends(
        settings,
        prometheus=Prometheus(gate),  # type: ignore[arg-type]
        alertmanager=Alertmanager(gate),  # type: ignore[arg-type]
        registry=Registry(gate, **kw),  # type: ignore[arg-type]
        redis=None,  # type: ignore[arg-type]
        policy=Policy(gate),  # type: ignore[arg-type]
        gateway_state=GatewayState(gate),  # type: ignore[arg-type]
    )


CLIENT_READS = 11
"""Four listed-client queries, the active count, the heatmap, blocks, budgets, hardenings,
the alerts and the gateway's state; the watched clients' queries follow the policy reads."""


async def test_clients_reads_everything_at_once(tmp_path: Path) -> None:
    snapshot = await fetch_clients(_sources(tmp_path, Gate(CLIENT_READS)))
    assert [(r.client, r.block is not None, r.budget is not None) for r in snapshot.rows] == [
        ("alice", True, True),
        ("bob", False, False),  # listed for its hardening
    ]
    assert snapshot.rows[1].reasons[0] == "hardened" and snapshot.rows[1].hardening is not None
    assert snapshot.policy_error is None
    assert snapshot.unlabelled is not None and snapshot.gateway_error is None
    assert [c.client for c in snapshot.unlabelled.unlabelled] == ["mallory"]


async def test_a_gateway_state_failure_is_shown_beside_the_data(tmp_path: Path) -> None:
    gate = Gate(CLIENT_READS, fail=frozenset({"gateway.clients"}))
    snapshot = await fetch_clients(_sources(tmp_path, gate))
    assert snapshot.gateway_error == "gateway.clients is down" and snapshot.unlabelled is None
    assert [r.client for r in snapshot.rows] == ["alice", "bob"] and snapshot.policy_error is None


@pytest.mark.parametrize(
    ("failing", "blocks", "budgets"),
    [("policy.blocks", False, False), ("policy.budgets", True, False)],
)
async def test_a_policy_store_failure_is_shown_beside_the_data(
    tmp_path: Path, failing: str, blocks: bool, budgets: bool
) -> None:
    gate = Gate(CLIENT_READS, fail=frozenset({failing}))
    snapshot = await fetch_clients(_sources(tmp_path, gate))
    assert snapshot.policy_error == f"{failing} is down"
    row = snapshot.rows[0]
    assert (row.rate, row.block is not None, row.budget is not None) == (1.5, blocks, budgets)


async def test_a_query_engine_failure_fails_the_view_and_cancels_the_other_reads(
    tmp_path: Path,
) -> None:
    heatmap = f"prometheus.range.{q.CLIENT_HEATMAP.promql}"
    gate = Gate(
        CLIENT_READS,
        fail=frozenset({f"prometheus.{q.CLIENT_RATE.promql}"}),
        slow=frozenset({heatmap, "policy.budgets"}),
    )
    with pytest.raises(ConsoleError, match="is down"):
        await asyncio.wait_for(fetch_clients(_sources(tmp_path, gate)), 5)
    assert sorted(gate.cancelled) == sorted([heatmap, "policy.budgets"])


async def test_models_reads_the_engine_and_every_models_registry_at_once(tmp_path: Path) -> None:
    gate = Gate(1 + 1 + 2 * 2)  # the instant panels' union, confidence range, 2 calls per model
    snapshot = await fetch_models(_sources(tmp_path, gate, ["digits", "iris"]))
    assert sorted(snapshot.versions) == ["digits", "iris"]
    assert snapshot.versions["digits"][0].aliases == ("a",)
    assert snapshot.registry_error is None


async def test_a_registry_failure_keeps_the_models_before_it(tmp_path: Path) -> None:
    gate = Gate(1 + 1 + 2 * 3, fail=frozenset({"registry.versions.iris"}))
    snapshot = await fetch_models(_sources(tmp_path, gate, ["digits", "iris", "wine"]))
    assert list(snapshot.versions) == ["digits"]  # as when read in turn: stops at iris
    assert snapshot.registry_error == "registry.versions.iris is down"
    assert [r.requests for r in snapshot.rows] == [1.5, None, None]


async def test_an_unregistered_model_has_no_versions_whatever_the_search_says(
    tmp_path: Path,
) -> None:
    gate = Gate(1 + 1 + 2, fail=frozenset({"registry.versions.digits"}))
    sources = _sources(tmp_path, gate, missing=frozenset({"digits"}))
    snapshot = await fetch_models(sources)
    assert snapshot.versions == {"digits": []}
    assert snapshot.registry_error is None


async def test_alerts_reads_alerts_and_silences_at_once(tmp_path: Path) -> None:
    snapshot = await fetch_alerts(_sources(tmp_path, Gate(2)))
    assert [a.alertname for a in snapshot.alerts] == ["A"]
    with pytest.raises(ConsoleError, match="silences is down"):
        await fetch_alerts(_sources(tmp_path, Gate(2, fail=frozenset({"alertmanager.silences"}))))


async def test_mitigations_reads_blocks_budgets_and_audit_at_once(tmp_path: Path) -> None:
    snapshot = await fetch_mitigations(_sources(tmp_path, Gate(3)))
    assert ([b.client for b in snapshot.blocks], [b.client for b in snapshot.budgets]) == (
        ["alice"],
        ["alice"],
    )
    assert [h.client for h in snapshot.hardenings] == ["bob"]
    assert snapshot.audit_error is None
    with pytest.raises(ConsoleError, match="budgets is down"):
        await fetch_mitigations(_sources(tmp_path, Gate(3, fail=frozenset({"policy.budgets"}))))
