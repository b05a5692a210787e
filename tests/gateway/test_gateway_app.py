"""The gateway app in-process (httpx.ASGITransport, lifespan running) against the session lab's
Redis and MLflow: bad requests, a tampered artifact, Redis outages, flagged samples."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import stat
import time
from typing import Any

import httpx
import numpy as np
import pytest
from gateway_support import body, digits, metric_lines, read_jsonl, spans
from support import free_port

from console.detectors.extraction import ExtractionMonitor
from console.detectors.squeezing import FeatureSqueezer
from console.identity import key_pseudonym
from console.lab.seed import SeededModel, download_artifact

pytestmark = pytest.mark.asyncio


async def until(check: Any, timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval_s)
    return False


async def ready(gw: Any, timeout_s: float = 20.0) -> None:
    async def check() -> bool:
        return (await gw.client.get("/v2/health/ready")).status_code == 200

    assert await until(check, timeout_s), (await gw.client.get("/v2/health/ready")).text


async def post(gw: Any, model: str, payload: Any, who: str | None = "alice", **kw: Any) -> Any:
    headers = {"X-Client-Id": who} if who else {}
    headers.update(kw.pop("headers", {}))
    if isinstance(payload, (bytes, str)):
        return await gw.client.post(
            f"/v2/models/{model}/infer", content=payload, headers=headers, **kw
        )
    return await gw.client.post(f"/v2/models/{model}/infer", json=payload, headers=headers, **kw)


async def test_bad_requests_get_clear_4xx_and_the_gateway_stays_up(
    start_in_process: Any, seeded_model: SeededModel
) -> None:
    gw = await start_in_process(seeded_model.name)
    await ready(gw)
    name = seeded_model.name
    good = digits(1)
    tensor = body(good)["inputs"][0]

    def with_tensor(**changes: Any) -> dict[str, Any]:
        return {"inputs": [{**tensor, **changes}]}

    nan_body = json.dumps(body(good)).replace(str(float(good[0][0])), "NaN", 1)
    cases: list[tuple[Any, dict[str, Any], int, str]] = [
        (with_tensor(shape=[1, 63]), {}, 400, "shape must be [N, 64]"),
        (with_tensor(shape=[2, 64]), {}, 400, "has 64 values"),
        (with_tensor(data=[1.0] * 63 + [17.0]), {}, 400, "within 0..16"),
        (with_tensor(data=[-1.0] + [1.0] * 63), {}, 400, "within 0..16"),
        (with_tensor(data=["1"] * 64), {}, 400, "only numbers"),
        (with_tensor(data=[[1.0] * 64, [1.0] * 3]), {}, 400, "only numbers"),
        (with_tensor(datatype="FP64"), {}, 400, "datatype must be 'FP32'"),
        (with_tensor(name="x"), {}, 400, "named 'input'"),
        ({"inputs": []}, {}, 400, "exactly one tensor"),
        ([1, 2], {}, 400, "JSON object"),
        (nan_body, {}, 400, "NaN and infinity are refused"),
        (json.dumps(body(good)).replace("0.0", "Infinity", 1), {}, 400, "infinity"),
        (b"not json at all", {}, 400, "not valid JSON"),
        (b"\xff\xfe", {}, 400, "not valid JSON"),
        (b"x" * (1024 * 1024 + 1), {}, 413, "over 1048576"),
        (body(good), {"who": None}, 400, "missing client identity"),
        (body(good), {"who": "bad client!"}, 400, "X-Client-Id must be"),
        # The bucket labels are not client ids: a client calling itself so would hide there.
        (body(good), {"who": "other"}, 400, "is reserved"),
        (body(good), {"who": "unknown"}, 400, "is reserved"),
        # A claim shaped like a key's pseudonym would be counted (and blocked) as that holder.
        (body(good), {"who": "key-0123456789abcdef"}, 400, "names an API key holder"),
    ]
    for payload, kw, status, words in cases:
        response = await post(gw, name, payload, **kw)
        assert response.status_code == status, (words, response.text)
        assert words in response.json()["error"], response.text
    unknown = await post(gw, "no-such-model", body(good))
    assert unknown.status_code == 404 and "not served here" in unknown.json()["error"]
    stray = await gw.client.get("/v2/nothing-here")
    assert stray.status_code == 404 and stray.json() == {"error": "Not Found"}
    wrong_method = await gw.client.get(f"/v2/models/{name}/infer")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    version = await gw.client.post(
        f"/v2/models/{name}/versions/99/infer", json=body(good), headers={"X-Client-Id": "a"}
    )
    assert version.status_code == 404 and "version '99' is not served" in version.json()["error"]

    assert (await gw.client.get("/v2/health/ready")).status_code == 200
    fine = await post(gw, name, body(good))
    assert fine.status_code == 200 and fine.json()["model_version"] == seeded_model.champion
    keyed = await post(gw, name, body(good), who=None, headers={"Authorization": "Bearer s3cr3t"})
    assert keyed.status_code == 200
    # The key is the identity: a claimed id beside it does not rename its holder.
    both = await post(
        gw, name, body(good), who="fresh-1", headers={"Authorization": "Bearer s3cr3t"}
    )
    assert both.status_code == 200
    text = (await gw.client.get("/metrics")).text
    assert 'aml_bad_requests_total{reason="not_finite"} 2.0' in text
    assert re.search(r'aml_requests_total\{client="key-[0-9a-f]{16}"', text)
    assert "s3cr3t" not in text
    # The pseudonym is an HMAC under the deployment's secret (0600, made by the gateway), not
    # a hash anyone can compute from a guessed key.
    secret_file = gw.gw.settings.run_dir / "secrets" / "pseudonym.key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    expected = key_pseudonym("s3cr3t", secret_file.read_text().strip().encode())
    assert f'client="{expected}"' in text
    assert 'client="fresh-1"' not in text
    unsalted = "key-" + hashlib.sha256(b"s3cr3t").hexdigest()[:16]
    assert unsalted not in text


async def test_unexpected_errors_answer_500_and_count_as_error(
    start_in_process: Any, seeded_model: SeededModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await start_in_process(seeded_model.name)
    await ready(gw)

    def broken(*args: Any) -> Any:
        raise RuntimeError("detector bug")

    monkeypatch.setattr(ExtractionMonitor, "observe", broken)
    response = await post(gw, seeded_model.name, body(digits(1)), who="zed")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error; see the gateway log"}
    text = (await gw.client.get("/metrics")).text
    assert re.search(r'aml_requests_total\{client="zed",.*outcome="error".*\} 1.0', text)
    monkeypatch.undo()
    assert (await post(gw, seeded_model.name, body(digits(1)))).status_code == 200


async def _register_tampered(lab: Any, model: SeededModel) -> str:
    """A new version of ``model`` whose onnx_sha256 tag does not match its artifact."""
    base = model.version(model.champion)
    api = f"{lab.settings.mlflow.url}/api/2.0/mlflow"
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        created = await http.post(
            f"{api}/model-versions/create",
            json={
                "name": model.name,
                "source": base.source,
                "run_id": base.run_id,
                "tags": [{"key": "onnx_sha256", "value": "0" * 64}],
            },
        )
        created.raise_for_status()
        version = str(created.json()["model_version"]["version"])
        moved = await http.post(
            f"{api}/registered-models/alias",
            json={"name": model.name, "alias": "champion", "version": version},
        )
        moved.raise_for_status()
    return version


async def test_tampered_artifact_is_refused_and_the_good_version_kept(
    lab: Any, start_in_process: Any, seeded_model: SeededModel
) -> None:
    gw = await start_in_process(seeded_model.name)
    await ready(gw)
    tampered = await _register_tampered(lab, seeded_model)

    async def refused() -> bool:
        meta = (await gw.client.get(f"/v2/models/{seeded_model.name}")).json()
        return (meta["aml"]["last_refusal"] or {}).get("version") == tampered

    assert await until(refused, 10.0)
    meta = (await gw.client.get(f"/v2/models/{seeded_model.name}")).json()
    refusal = meta["aml"]["last_refusal"]
    assert refusal["reason"] == "sha256_mismatch"
    assert "does not match the onnx_sha256 tag" in refusal["message"]
    assert meta["versions"] == [seeded_model.champion]
    assert meta["aml"]["champion"] == tampered
    served = await post(gw, seeded_model.name, body(digits(1)))
    assert served.status_code == 200 and served.json()["model_version"] == seeded_model.champion
    text = (await gw.client.get("/metrics")).text
    assert (
        f'aml_model_load_failures_total{{model="{seeded_model.name}",reason="sha256_mismatch"}} 1.0'
        in text
    )

    # A gateway that starts on the tampered champion has nothing good to serve: not ready, why.
    fresh = await start_in_process(seeded_model.name)

    async def explains() -> bool:
        got = await fresh.client.get("/v2/health/ready")
        return got.status_code == 503 and "refused" in got.text

    assert await until(explains, 10.0)
    answer = (await fresh.client.get("/v2/health/ready")).json()
    assert "does not match the onnx_sha256 tag" in answer["models"][seeded_model.name]
    no_model = await post(fresh, seeded_model.name, body(digits(1)))
    assert no_model.status_code == 503 and "not loaded" in no_model.json()["error"]


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_redis_outage_follows_the_failure_mode(
    start_in_process: Any, seeded_model: SeededModel, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("CONSOLE_REDIS__URL", f"redis://127.0.0.1:{free_port()}/0")
    gw = await start_in_process(seeded_model.name, redis_failure_mode=mode)
    await ready(gw)
    started = time.monotonic()
    codes = [(await post(gw, seeded_model.name, body(digits(1)))).status_code for _ in range(5)]
    assert time.monotonic() - started < 3.0, "an outage must not make every request wait"
    assert codes == ([200] * 5 if mode == "open" else [503] * 5)
    text = (await gw.client.get("/metrics")).text
    assert "aml_policy_store_up 0.0" in text
    counter = "aml_policy_fail_open_total" if mode == "open" else "aml_policy_fail_closed_total"
    assert metric_lines(text, counter)[0].endswith(" 5.0")
    assert (await gw.client.get("/v2/health/live")).status_code == 200


def _flagging_rows(model: SeededModel, lab: Any, threshold: float, count: int) -> Any:
    """Uniform-noise inputs that the served model's detector scores at or above ``threshold``
    (checked with the gateway's own detector, so the test does not hope)."""
    from console.lab.gateway.models import make_session

    onnx = download_artifact(lab.settings.mlflow.url, model.name, model.champion)
    session = make_session(onnx)
    squeezer = FeatureSqueezer()
    rng = np.random.default_rng(7)
    noise = rng.uniform(0, 16, size=(400, 64)).astype(np.float32)
    probabilities = session.run(["probabilities"], {"input": squeezer.batch(noise)})[0]
    scores = squeezer.scores(probabilities, len(noise))
    chosen = noise[scores >= threshold][:count]
    assert len(chosen) == count
    return chosen


async def test_flagged_inputs_reach_the_sample_store_with_their_trace(
    lab: Any, start_in_process: Any, seeded_model: SeededModel
) -> None:
    threshold = 0.6
    gw = await start_in_process(seeded_model.name, flag_threshold=threshold)
    await ready(gw)
    noisy = _flagging_rows(seeded_model, lab, threshold + 0.05, 3)
    trace_ids = []
    for row in noisy:
        response = await post(gw, seeded_model.name, body([row]), who="evasive-1")
        assert response.status_code == 200
        trace_ids.append(response.headers["X-Trace-Id"])
    await gw.gateway.stop()  # flushes the writers; the fixture's second stop is harmless

    samples = read_jsonl(gw.gw.samples_dir, "dt=*/samples-*.jsonl")
    by_trace = {s["trace_id"]: s for s in samples}
    all_spans = {s["traceId"]: s for s in spans(gw.gw.traces_dir)}
    for trace_id, row in zip(trace_ids, noisy, strict=True):
        sample = by_trace[trace_id]
        span = all_spans[trace_id]
        assert span["attrs"]["aml.sample_id"] == sample["sample_id"]
        assert span["attrs"]["aml.flagged"] is True
        assert sample["flagged"] and sample["detector_score"] >= threshold
        assert sample["client"] == "evasive-1" and sample["model"] == seeded_model.name
        assert sample["version"] == seeded_model.champion
        assert np.allclose(sample["input"], row) and len(sample["input"]) == 64
        assert sample["input_sha256"] == hashlib.sha256(row.tobytes()).hexdigest()
        assert sample["input_sha256"] == span["attrs"]["aml.input_sha256"]
        for key in ("time", "extraction_score", "prediction", "confidence"):
            assert key in sample
    text = (await gw.client.get("/metrics")).text
    assert re.search(r'aml_flagged_total\{client="evasive-1",.*reason="feature_squeezing"', text)
    # Inputs and client ids are personal data: owner-only files and directories, whatever
    # the umask (the test runs with the usual 022).
    for root in (gw.gw.samples_dir, gw.gw.traces_dir):
        found = [root, *root.rglob("*")]
        assert len(found) > 1
        for path in found:
            want = 0o700 if path.is_dir() else 0o600
            assert stat.S_IMODE(path.stat().st_mode) == want, path


async def test_hash_only_keeps_inputs_out_and_old_partitions_expire(
    lab: Any, start_in_process: Any, seeded_model: SeededModel, tmp_path: Any
) -> None:
    from console.lab.gateway.samples import SampleStore
    from console.lab.gateway.sinks import JsonlSink

    gw = await start_in_process(
        seeded_model.name, hash_only="true", sample_fraction="1", retention_days="2"
    )
    await ready(gw)
    assert (await post(gw, seeded_model.name, body(digits(2)), who="hana")).status_code == 200
    await gw.gateway.stop()
    samples = read_jsonl(gw.gw.samples_dir, "dt=*/samples-*.jsonl")
    assert len(samples) == 2
    assert all(
        "input" not in s and re.fullmatch(r"[0-9a-f]{64}", s["input_sha256"]) for s in samples
    )

    root = tmp_path / "retention"
    for day in ("2026-01-01", "2026-01-08", "2026-01-09", "2026-01-10"):
        (root / f"dt={day}").mkdir(parents=True)
    (root / "dt=not-a-date").mkdir()
    store = SampleStore(root, JsonlSink("t"), fraction=0, hash_only=False, retention_days=2)
    import datetime as dt

    removed = store.expire(dt.date(2026, 1, 10))
    assert sorted(p.name for p in removed) == ["dt=2026-01-01"]
    assert sorted(p.name for p in root.iterdir()) == [
        "dt=2026-01-08",
        "dt=2026-01-09",
        "dt=2026-01-10",
        "dt=not-a-date",
    ]


async def test_a_policy_change_applies_within_a_second_through_pubsub(
    start_in_process: Any, seeded_model: SeededModel
) -> None:
    gw = await start_in_process(seeded_model.name, policy_cache_s="1.0")
    await ready(gw)
    store = gw.gateway.policy.store
    assert (await post(gw, seeded_model.name, body(digits(1)), who="ivan")).status_code == 200
    from datetime import timedelta

    await store.block("ivan", timedelta(minutes=5), "test", "tester", "run-1")
    started = time.monotonic()

    async def blocked() -> bool:
        return (await post(gw, seeded_model.name, body(digits(1)), who="ivan")).status_code == 403

    assert await until(blocked, 2.0, 0.02)
    assert time.monotonic() - started < 1.0
    await store.unblock("ivan")
    assert await until(lambda: _status(gw, seeded_model.name, "ivan", 200), 2.0, 0.02)
    assert not math.isnan(time.monotonic())


async def _status(gw: Any, model: str, who: str, status: int) -> bool:
    return (await post(gw, model, body(digits(1)), who=who)).status_code == status


async def test_who_is_in_other_comes_from_the_gateways_own_state(
    start_in_process: Any, seeded_model: SeededModel
) -> None:
    """Two label slots, taken by two throwaway ids; the prober that follows is counted as
    `other` until its extraction score outranks a holder, and the gateway's /aml/clients
    names whoever is in `other`, riskiest first, while /metrics exports the riskiest."""
    gw = await start_in_process(seeded_model.name, client_labels=2)
    await ready(gw)
    name = seeded_model.name
    for sybil in ("sybil-1", "sybil-2", "sybil-3"):
        assert (await post(gw, name, body(digits(1)), who=sybil)).status_code == 200
    state = (await gw.client.get("/aml/clients")).json()
    assert state["label_slots"] == {"capacity": 2, "used": 2}
    assert [c["client"] for c in state["unlabelled"]] == ["sybil-3"]
    text = (await gw.client.get("/metrics")).text
    assert "aml_client_label_slots_used 2.0" in text
    assert "aml_client_label_slots_capacity 2.0" in text
    assert "aml_new_clients_total 3.0" in text

    # A probing walk: one seed, small equal steps (what the extraction statistic catches).
    rng = np.random.default_rng(3)
    x = digits(1)[0].astype(np.float64)
    labels_seen = []
    for _ in range(60):
        x = np.clip(x + rng.choice([-1.0, 1.0], size=64) * 0.5, 0, 16)
        assert (await post(gw, name, body(x[None, :]), who="prober")).status_code == 200
        text = (await gw.client.get("/metrics")).text
        labels_seen.append('client="prober"' in text)
    assert not labels_seen[0], "the prober had a slot before any evidence"
    assert labels_seen[-1], "the prober never outranked a throwaway id"
    score = gw.gateway.extraction[name].score("prober")
    assert score > 0.05, score  # above the holders' risk (0) by the margin
    state = (await gw.client.get("/aml/clients?limit=10")).json()
    assert "prober" not in [c["client"] for c in state["unlabelled"]]
    assert len(state["unlabelled"]) == 2  # the evicted throwaway id and sybil-3
    bad = await gw.client.get("/aml/clients?limit=0")
    assert bad.status_code == 400 and "limit" in bad.json()["error"]
