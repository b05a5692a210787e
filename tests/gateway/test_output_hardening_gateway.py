"""Output hardening at the lab gateway, in process, against the session lab's Redis and MLflow:
the real ``harden-outputs`` runbook (through the CLI) reduces one client's V2 answers
(label-only: no probabilities; top1: the top class's probability alone; rounded: 2 decimals)
while other clients get full answers; ``unharden-outputs``, expiry and the compensation of a
run whose later step fails give full answers back."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from gateway_support import body, digits
from support import run_cli

from console.lab.seed import SeededModel

pytestmark = pytest.mark.asyncio

HARDEN_THEN_FAIL = """\
name: harden-then-fail
target: "client:{{ params.client }}"
parameters:
  client: {type: string, required: true, pattern: '^[a-z0-9-]+$'}
steps:
  - id: harden
    action: policy.harden_outputs
    with: {client: "{{ params.client }}", mode: label-only, ttl: 1h}
  - id: hook
    action: http.request
    with: {method: POST, url: "http://127.0.0.1:1/hook"}
"""


async def _ready(gw: Any) -> None:
    for _ in range(400):
        if (await gw.client.get("/v2/health/ready")).status_code == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError((await gw.client.get("/v2/health/ready")).text)


def _runbook(gw: Any, name: str, *params: str, code: int = 0) -> dict[str, Any]:
    args = ["runbook", "run", name]
    for param in params:
        args += ["-p", param]
    result = run_cli([*args, "--yes", "-o", "json"], gw.gw.env)
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def _answer(gw: Any, model: str, client: str) -> tuple[dict[str, Any], str | None]:
    """Outputs by name, and the X-AML-Output header, of a 3-row request; the decider's cache
    entry is dropped first, as the change feed does on the runbook's announcement."""
    gw.gateway.policy.invalidate(client)
    reply = await gw.client.post(
        f"/v2/models/{model}/infer", json=body(digits(3)), headers={"X-Client-Id": client}
    )
    assert reply.status_code == 200, reply.text
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    return outputs, reply.headers.get("X-AML-Output")


def _full(outputs: dict[str, Any]) -> bool:
    probabilities = outputs.get("probabilities", {}).get("data", [])
    return set(outputs) == {"label", "probabilities"} and len(probabilities) == 30


async def test_label_only_rounded_top1_for_one_client_then_unharden(
    lab: Any, start_in_process: Any, seeded_model: SeededModel
) -> None:
    gw = await start_in_process(seeded_model.name)
    await _ready(gw)
    model = seeded_model.name
    prefix = gw.gw.settings.redis.key_prefix
    admin = redis.Redis.from_url(lab.settings.redis.url, decode_responses=True)
    try:
        full, header = await _answer(gw, model, "bob")
        assert _full(full) and header is None
        labels = full["label"]["data"]

        run = _runbook(gw, "harden-outputs", "client=bob", "mode=label-only", "ttl=1h")
        assert "label-only" in run["plan"]["steps"][0]["summary"]
        assert run["run"]["outputs"]["mode"] == "label-only"
        key = f"{prefix}:policy:hardening:bob"
        record = json.loads(admin.get(key) or "{}")
        assert record["mode"] == "label-only" and record["id"].startswith("hrd-")
        assert 0 < admin.pttl(key) <= 3_600_000  # Redis drops it when it expires

        hardened, header = await _answer(gw, model, "bob")
        assert set(hardened) == {"label"} and header == "label-only"
        assert hardened["label"]["data"] == labels  # the same predictions, nothing more
        other, header = await _answer(gw, model, "carol")
        assert _full(other) and header is None

        _runbook(gw, "harden-outputs", "client=bob", "mode=rounded", "decimals=2", "ttl=1h")
        rounded, header = await _answer(gw, model, "bob")
        assert header == "rounded;decimals=2" and _full(rounded)
        values = rounded["probabilities"]["data"]
        assert all(round(v, 2) == v for v in values)
        assert any(round(v, 2) != v for v in full["probabilities"]["data"])

        _runbook(gw, "harden-outputs", "client=bob", "mode=top1", "ttl=1h")
        top1, header = await _answer(gw, model, "bob")
        assert header == "top1" and _full(top1)

        def rows(outputs: dict[str, Any]) -> list[list[float]]:
            flat = outputs["probabilities"]["data"]
            return [flat[i * 10 : i * 10 + 10] for i in range(3)]

        for row, label, full_row in zip(rows(top1), labels, rows(full), strict=True):
            assert [i for i, v in enumerate(row) if v] == [label]
            assert row[label] == full_row[label]

        lifted = _runbook(gw, "unharden-outputs", "client=bob")
        assert "lift the output hardening of bob (top1" in lifted["plan"]["steps"][0]["summary"]
        assert admin.get(key) is None
        again, header = await _answer(gw, model, "bob")
        assert _full(again) and header is None
    finally:
        admin.delete(*admin.keys(f"{prefix}:*") or ["-"])
        admin.close()


async def test_expired_hardening_and_compensated_run_give_full_answers(
    lab: Any, start_in_process: Any, seeded_model: SeededModel, tmp_path: Path
) -> None:
    gw = await start_in_process(seeded_model.name)
    await _ready(gw)
    model = seeded_model.name
    prefix = gw.gw.settings.redis.key_prefix
    key = f"{prefix}:policy:hardening:dave"
    admin = redis.Redis.from_url(lab.settings.redis.url, decode_responses=True)
    try:
        _runbook(gw, "harden-outputs", "client=dave", "mode=label-only", "ttl=1m")
        hardened, _ = await _answer(gw, model, "dave")
        assert set(hardened) == {"label"}
        # Its expiry passes: a record still in Redis (a TTL not yet applied) is not enforced.
        record = json.loads(admin.get(key) or "{}")
        record["expires_at"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        admin.set(key, json.dumps(record), px=60_000)
        expired, header = await _answer(gw, model, "dave")
        assert _full(expired) and header is None
        admin.delete(key)

        runbook = tmp_path / "harden-then-fail.yaml"
        runbook.write_text(HARDEN_THEN_FAIL)
        failed = _runbook(gw, str(runbook), "client=erin", code=1)
        assert failed["run"]["status"] == "compensated"
        assert admin.get(f"{prefix}:policy:hardening:erin") is None
        restored, header = await _answer(gw, model, "erin")
        assert _full(restored) and header is None
    finally:
        admin.delete(*admin.keys(f"{prefix}:*") or ["-"])
        admin.close()


async def test_behind_the_policy_endpoint_the_gateway_applies_its_x_aml_output(
    lab: Any, start_in_process: Any, seeded_model: SeededModel
) -> None:
    """A replica behind the lab's NGINX (policy decided upstream) reduces its answer as the
    endpoint's ``X-AML-Output`` says; one that decides itself ignores a client's copy."""
    model = seeded_model.name
    url = f"/v2/models/{model}/infer"
    payload = body(digits(2))
    replica = await start_in_process(model, policy_decided_upstream=True)
    await _ready(replica)

    async def outputs(gw: Any, value: str) -> dict[str, Any]:
        headers = {"X-Client-Id": "frank", "X-AML-Output": value}
        reply = await gw.client.post(url, json=payload, headers=headers)
        assert reply.status_code == 200, reply.text
        return {o["name"]: o["data"] for o in reply.json()["outputs"]}

    assert set(await outputs(replica, "label-only")) == {"label"}
    rounded = (await outputs(replica, "rounded;decimals=1"))["probabilities"]
    assert len(rounded) == 20 and all(round(v, 1) == v for v in rounded)
    assert set(await outputs(replica, "")) == {"label", "probabilities"}
    # A value it cannot read reduces the answer the most.
    assert set(await outputs(replica, "rounded;decimals=lots")) == {"label"}

    deciding = await start_in_process(model, policy_decided_upstream=False)  # env persists
    await _ready(deciding)
    assert set(await outputs(deciding, "label-only")) == {"label", "probabilities"}
