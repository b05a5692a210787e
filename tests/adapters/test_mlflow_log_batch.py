"""``MlflowTracking.log_batch`` (``runs/log-batch``) and ``Run.metrics`` against the session
lab's real MLflow: more metrics and tags than one call may carry are split at MLflow's limits,
every one reads back through ``search_runs``, and a refused batch is one ConsoleError line."""

from __future__ import annotations

import time
import uuid

import pytest

from console.adapters.mlflow import MlflowRegistry
from console.adapters.mlflow_tracking import (
    MAX_BATCH_ENTITIES,
    MAX_BATCH_METRICS,
    MAX_BATCH_PARAMS,
    MAX_BATCH_TAGS,
    batches,
    metrics_of,
)
from console.errors import ConsoleError


async def test_a_batch_over_the_limits_is_split_and_every_entry_reads_back(
    registry: MlflowRegistry,
) -> None:
    experiment = await registry.create_experiment(f"aml-test-batch-{uuid.uuid4().hex[:12]}")
    assert experiment is not None
    now = int(time.time() * 1000)
    run = await registry.create_run(experiment, "batch", now)
    metrics = {f"m.{i}": i / 1000 for i in range(1500)}
    tags = {f"t.{i}": f"v{i}" for i in range(150)}
    params = {f"p.{i}": str(i) for i in range(120)}

    calls = await registry.log_batch(run.run_id, metrics, params, tags, timestamp_ms=now)
    # 1500 metrics need 2 calls at 1000 a call; the 150 tags and 120 params ride along until
    # a call holds 1000 entries or 100 tags/params.
    assert calls == len(batches(metrics, params, tags)) >= 3
    await registry.update_run(run.run_id, "FINISHED", now + 1)

    (found,) = await registry.search_runs([experiment], "attributes.status = 'FINISHED'")
    assert found.run_id == run.run_id and found.start_time_ms == now
    assert found.metrics == metrics
    assert {k: v for k, v in found.tags.items() if k.startswith("t.")} == tags


def test_each_batch_body_is_within_mlflows_limits() -> None:
    metrics = {f"m{i}": float(i) for i in range(2345)}
    tags = {f"t{i}": "x" for i in range(250)}
    params = {f"p{i}": "y" for i in range(101)}
    bodies = batches(metrics, params, tags, timestamp_ms=7, step=2)
    for body in bodies:
        assert len(body.get("metrics", [])) <= MAX_BATCH_METRICS
        assert len(body.get("tags", [])) <= MAX_BATCH_TAGS
        assert len(body.get("params", [])) <= MAX_BATCH_PARAMS
        assert sum(len(v) for v in body.values()) <= MAX_BATCH_ENTITIES
    sent = [e for body in bodies for e in body.get("metrics", [])]
    assert {e["key"]: e["value"] for e in sent} == metrics
    assert all(e["timestamp"] == 7 and e["step"] == 2 for e in sent)
    assert sum(len(b.get("tags", [])) for b in bodies) == 250
    assert sum(len(b.get("params", [])) for b in bodies) == 101
    assert batches({}, {}, {}) == []


def test_run_metrics_keep_numbers_only() -> None:
    raw = [
        {"key": "ok", "value": 0.5, "timestamp": 1, "step": 0},
        {"key": "int", "value": 3},
        {"key": "nan", "value": float("nan")},
        {"key": "text", "value": "0.1"},
        {"key": "flag", "value": True},
        {"value": 1.0},
        "garbage",
    ]
    assert metrics_of(raw) == {"ok": 0.5, "int": 3.0}
    assert metrics_of(None) == {}


async def test_a_batch_for_a_run_that_does_not_exist_is_one_line(
    registry: MlflowRegistry,
) -> None:
    with pytest.raises(ConsoleError) as caught:
        await registry.log_batch("0" * 32, {"m": 1.0})
    text = str(caught.value)
    assert text.strip() and "\n" not in text
