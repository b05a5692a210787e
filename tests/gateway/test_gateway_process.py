"""The gateway as the launcher starts it (a uvicorn process on a free port, own run dir), driven
by the real runbook CLI against the session lab's Redis and MLflow."""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import httpx
import numpy as np
from gateway_limits import MAX_PENDING_BODIES, SLOW_BODY_TIMEOUT_S
from gateway_support import (
    GatewayEnv,
    digits,
    infer,
    metric_lines,
    spans,
    wait_until,
)
from support import run_cli

from console.lab import services
from console.lab.seed import SeededModel, describe_model

HEX32, HEX16 = re.compile(r"^[0-9a-f]{32}$"), re.compile(r"^[0-9a-f]{16}$")


def runbook(gw: GatewayEnv, name: str, **params: str) -> None:
    args = ["runbook", "run", name]
    for key, value in params.items():
        args += ["-p", f"{key}={value}"]
    proc = run_cli([*args, "--yes"], gw.env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_launcher_runs_the_gateway_process(launched: GatewayEnv) -> None:
    [row] = services.status(launched.settings, ["gateway"])
    assert row.state == "running" and isinstance(row.pid, int)
    assert row.port == int(launched.url.rsplit(":", 1)[1])
    home = launched.settings.lab_dir / "gateway"
    assert (home / "gateway.pid").is_file() and (home / "gateway.log").is_file()


def test_infer_returns_a_prediction_and_the_champion_version(
    http: httpx.Client, module_model: SeededModel, lab: Any
) -> None:
    champion = describe_model(lab.settings.mlflow.url, module_model.name)
    assert champion is not None
    assert http.get("/v2/health/live").status_code == 200
    assert http.get("/v2/health/ready").status_code == 200
    rows = digits(3)
    response = infer(http, module_model.name, rows)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["model_version"] == champion.champion and out["id"]
    tensors = {t["name"]: t for t in out["outputs"]}
    assert tensors["label"]["datatype"] == "INT64" and len(tensors["label"]["data"]) == 3
    assert tensors["probabilities"]["shape"] == [3, 10]
    probabilities = np.array(tensors["probabilities"]["data"]).reshape(3, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    meta = http.get(f"/v2/models/{module_model.name}").json()
    assert meta["versions"] == [champion.champion]
    assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 64]}


def test_block_client_runbook_gives_403_within_a_second(
    http: httpx.Client, launched: GatewayEnv, module_model: SeededModel
) -> None:
    rows = digits(1)
    # Both clients have a cached policy ("not blocked") before the block is written.
    assert infer(http, module_model.name, rows, "mallory-1").status_code == 200
    assert infer(http, module_model.name, rows, "alice").status_code == 200
    runbook(launched, "block-client", client="mallory-1", ttl="10m", reason="extraction test")
    lag = wait_until(
        lambda: infer(http, module_model.name, rows, "mallory-1").status_code == 403, 2.0
    )
    assert lag is not None and lag < 1.0, f"block applied after {lag} s"
    refused = infer(http, module_model.name, rows, "mallory-1")
    assert refused.status_code == 403
    error = refused.json()["error"]
    # The client learns that it is blocked and the block's id, never the operator's reason.
    assert "blocked" in error and re.search(r"\(block blk-[0-9a-f]{12}\)", error), error
    assert "extraction test" not in refused.text
    assert infer(http, module_model.name, rows, "alice").status_code == 200

    def gauge_exported() -> bool:
        text = http.get("/metrics").text
        return 'aml_policy_blocked{client="mallory-1"} 1.0' in text

    assert wait_until(gauge_exported, 8.0, 0.2) is not None
    text = http.get("/metrics").text
    assert re.search(
        r'aml_requests_total\{client="mallory-1",model="[^"]+",outcome="blocked",version="\d+"\}',
        text,
    )


def test_lower_query_budget_runbook_gives_429_after_the_budget(
    http: httpx.Client, launched: GatewayEnv, module_model: SeededModel
) -> None:
    runbook(launched, "lower-query-budget", client="bob", qpm="5")
    if 60 - time.time() % 60 < 8:  # fixed one-minute windows: stay inside one
        time.sleep(60 - time.time() % 60 + 0.1)
    rows = digits(1)
    codes = [infer(http, module_model.name, rows, "bob").status_code for _ in range(5)]
    assert codes == [200] * 5
    sixth = infer(http, module_model.name, rows, "bob")
    assert sixth.status_code == 429, sixth.text
    assert 1 <= int(sixth.headers["Retry-After"]) <= 60
    assert "budget of 5" in sixth.json()["error"]
    assert infer(http, module_model.name, rows, "carol").status_code == 200
    assert wait_until(
        lambda: 'aml_policy_budget_qpm{client="bob"} 5.0' in http.get("/metrics").text, 8.0, 0.2
    )


def test_rollback_runbook_switches_the_served_version_live(
    http: httpx.Client, launched: GatewayEnv, module_model: SeededModel
) -> None:
    rows = digits(1)
    assert module_model.previous is not None
    assert infer(http, module_model.name, rows).json()["model_version"] == module_model.champion
    runbook(launched, "rollback-model", model=module_model.name)
    budget = launched.settings.gateway.alias_poll_s + 3.0  # + download, hash, session
    lag = wait_until(
        lambda: (
            infer(http, module_model.name, rows).json()["model_version"] == module_model.previous
        ),
        budget,
        0.05,
    )
    assert lag is not None, f"still serving {module_model.champion} after {budget} s"
    meta = http.get(f"/v2/models/{module_model.name}").json()
    assert meta["versions"] == [module_model.previous]


def test_bad_requests_leave_the_process_healthy(
    http: httpx.Client, module_model: SeededModel
) -> None:
    url = f"/v2/models/{module_model.name}/infer"
    nan = '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[NaN' + ",1" * 63
    cases = [
        (http.post(url, content=nan + "]}]}", headers={"X-Client-Id": "fuzz"}), 400, "NaN"),
        (http.post(url, content=b"[" * 2_000_000, headers={"X-Client-Id": "fuzz"}), 413, "over"),
        (http.post(url, content=b"{oops", headers={"X-Client-Id": "fuzz"}), 400, "JSON"),
        # 10,000 levels: a 400 from a bounded parse, not a 500 with a RecursionError.
        (
            http.post(url, content=b"[" * 10_000 + b"]" * 10_000, headers={"X-Client-Id": "fuzz"}),
            400,
            "nested too deeply",
        ),
        (
            http.post(
                url,
                content=b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
                headers={"X-Client-Id": "fuzz"},
            ),
            400,
            "nested too deeply",
        ),
    ]
    for response, status, words in cases:
        assert response.status_code == status, response.text
        assert words in response.json()["error"]
    assert http.get("/v2/health/ready").status_code == 200
    assert infer(http, module_model.name, digits(1)).status_code == 200


def test_metrics_and_spans_after_traffic(
    http: httpx.Client, launched: GatewayEnv, module_model: SeededModel
) -> None:
    for row in digits(25):
        assert infer(http, module_model.name, [row], "dave").status_code == 200
    text = http.get("/metrics").text
    name = module_model.name
    for metric, labels in {
        "aml_requests_total": ("client", "model", "outcome", "version"),
        "aml_request_duration_seconds_bucket": ("le", "model", "version"),
        "aml_detector_score_bucket": ("le", "model", "version"),
        "aml_prediction_confidence_bucket": ("le", "model", "version"),
        "aml_client_extraction_score": ("client", "model"),
    }.items():
        lines = [ln for ln in metric_lines(text, metric + "{") if f'model="{name}"' in ln]
        assert lines, metric
        assert tuple(sorted(re.findall(r'(\w+)="', lines[0]))) == labels, lines[0]
    assert "aml_policy_store_up 1.0" in text
    assert re.search(rf'aml_client_extraction_score{{client="dave",model="{name}"}} [0-9.]+', text)

    response = infer(http, module_model.name, digits(1), "erin")
    trace_id = response.headers["X-Trace-Id"]
    assert wait_until(
        lambda: any(s["traceId"] == trace_id for s in spans(launched.traces_dir)), 3.0
    )
    [span] = [s for s in spans(launched.traces_dir) if s["traceId"] == trace_id]
    assert HEX32.match(span["traceId"]) and HEX16.match(span["spanId"])
    attrs = span["attrs"]
    assert attrs["aml.client"] == "erin" and attrs["aml.model"] == name
    assert (
        attrs["aml.outcome"] == "ok"
        and attrs["aml.model_version"] == response.json()["model_version"]
    )
    for key in ("aml.detector_score", "aml.extraction_score"):
        assert 0.0 <= float(attrs[key]) <= 1.0
    assert re.fullmatch(r"[0-9a-f]{64}", attrs["aml.input_sha256"])
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])


def _slow_body(gw: GatewayEnv, model: str) -> socket.socket:
    """A request that announces 1,000 bytes of body and sends 10."""
    host, port = gw.url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=30)
    conn.sendall(
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: {host}\r\nX-Client-Id: slow\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode()
        + b'{"inputs":'
    )
    return conn


def _status_of(conn: socket.socket) -> tuple[int, bytes]:
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = conn.recv(4096)
        if not chunk:
            break
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    while len(body) < length and (chunk := conn.recv(4096)):
        body += chunk
    return int(answer.split(b" ", 2)[1]), body


def test_a_body_that_never_arrives_is_cut_off_and_cannot_hold_the_gateway(
    launched: GatewayEnv, http: httpx.Client, module_model: SeededModel
) -> None:
    """Slow bodies get 408 after the deadline; while the cap of pending bodies is reached a
    further request is refused at once (503), and the gateway serves again afterwards."""
    started = time.monotonic()
    held = [_slow_body(launched, module_model.name) for _ in range(MAX_PENDING_BODIES)]
    try:
        time.sleep(0.3)  # every slow request is now waiting for its body
        refused = http.post(
            f"/v2/models/{module_model.name}/infer",
            content=b"{}",
            headers={"X-Client-Id": "patient"},
        )
        assert refused.status_code == 503, refused.text
        assert "too many request bodies" in refused.json()["error"]
        for conn in held:
            status, answer = _status_of(conn)
            assert status == 408, answer
            assert b"not received within 2 s" in answer
    finally:
        for conn in held:
            conn.close()
    waited = time.monotonic() - started
    assert waited < SLOW_BODY_TIMEOUT_S + 20, f"the slow requests were held {waited:.1f} s"
    assert infer(http, module_model.name, digits(1)).status_code == 200
    text = http.get("/metrics").text
    assert f'aml_bad_requests_total{{reason="body_timeout"}} {MAX_PENDING_BODIES}.0' in text
