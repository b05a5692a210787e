"""``aml-console policy serve`` as a real process against the session lab's Redis (own key
prefix, own run dir, own port), driven with httpx the way NGINX ``auth_request``, Envoy
``ext_authz`` and Traefik ``forwardAuth`` ask it; mitigations applied with the real runbooks."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import redis
from policy_support import (
    Endpoint,
    endpoint_env,
    private_redis,
    serving,
    stay_inside_one_window,
    subscribed,
    wait_until,
)
from support import free_port, run_cli

from console.lab.gateway.callers import client_from_headers, pseudonym_secret

REASON = "extraction-suspected-by-the-on-call"


@pytest.fixture
def endpoint(lab: Any, tmp_path: Path) -> Any:
    env, prefix = endpoint_env(lab.config_path, tmp_path / "run")
    with serving(env, prefix, tmp_path) as served:
        yield served


def _metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


def test_allowed_blocked_and_over_budget_answers(endpoint: Endpoint, lab: Any) -> None:
    with endpoint.client() as http:
        allowed = http.get("/v1/decision", headers={"X-Client-Id": "alice"})
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["X-AML-Client"] == "alice"
        # Envoy's path_prefix appends the request's path: the suffix is the same decision.
        envoy = http.post("/v1/decision/v2/models/digits/infer", headers={"X-Client-Id": "alice"})
        assert envoy.status_code == 200 and envoy.headers["X-AML-Client"] == "alice"

        # Block: the decision (cached "not blocked" just now) turns with the change feed.
        assert http.get("/v1/decision", headers={"X-Client-Id": "mallory"}).status_code == 200
        channel = f"{endpoint.prefix}:policy:changes"
        assert subscribed(lab.settings.redis.url, channel)
        endpoint.runbook("block-client", client="mallory", ttl="10m", reason=REASON)
        lag = wait_until(
            lambda: http.get("/v1/decision", headers={"X-Client-Id": "mallory"}).status_code == 403,
            2.0,
        )
        assert lag is not None and lag < 1.0, f"block applied after {lag} s"
        blocked = http.get("/v1/decision", headers={"X-Client-Id": "mallory"})
        admin = redis.Redis.from_url(lab.settings.redis.url, decode_responses=True)
        stored = json.loads(admin.get(f"{endpoint.prefix}:policy:block:mallory") or "{}")
        assert re.fullmatch(r"blk-[0-9a-f]{12}", blocked.headers["X-AML-Block-Id"])
        assert blocked.headers["X-AML-Block-Id"] == stored["id"]
        assert REASON not in blocked.text and REASON not in str(blocked.headers)
        nginx_blocked = http.get("/v1/decision/nginx", headers={"X-Client-Id": "mallory"})
        assert nginx_blocked.status_code == 403
        assert nginx_blocked.headers["X-AML-Status"] == "403"
        assert nginx_blocked.headers["X-AML-Block-Id"] == stored["id"]
        assert http.get("/v1/decision", headers={"X-Client-Id": "alice"}).status_code == 200

        # Budget: 5 a minute; the sixth gets 429 and how long to wait.
        endpoint.runbook("lower-query-budget", client="bob", qpm="5")
        stay_inside_one_window()
        codes = [
            http.get("/v1/decision", headers={"X-Client-Id": "bob"}).status_code for _ in range(5)
        ]
        assert codes == [200] * 5
        sixth = http.get("/v1/decision", headers={"X-Client-Id": "bob"})
        assert sixth.status_code == 429, sixth.text
        assert 1 <= int(sixth.headers["Retry-After"]) <= 60
        # NGINX's auth_request passes only 2xx and 401/403: the 429 travels in headers.
        nginx = http.get("/v1/decision/nginx", headers={"X-Client-Id": "bob"})
        assert nginx.status_code == 403
        assert nginx.headers["X-AML-Status"] == "429"
        assert 1 <= int(nginx.headers["X-AML-Retry-After"]) <= 60
        assert "Retry-After" not in nginx.headers
        assert http.get("/v1/decision/nginx", headers={"X-Client-Id": "carol"}).status_code == 200

        missing = http.get("/v1/decision")
        assert missing.status_code == 401 and "X-Client-Id" in missing.json()["error"]

        text = http.get("/metrics").text
        # Allowed: 10 above, and mallory's answers while the block was on its way.
        assert _metric(text, 'aml_policy_decisions_total{outcome="allow"}') >= 10
        assert _metric(text, 'aml_policy_decisions_total{outcome="block"}') == 3
        assert _metric(text, 'aml_policy_decisions_total{outcome="budget"}') == 2
        assert _metric(text, 'aml_policy_decisions_total{outcome="error"}') == 1
        assert _metric(text, "aml_policy_decision_seconds_count") >= 16
        assert _metric(text, "aml_policy_redis_errors_total") == 0
        admin.close()


def test_an_api_key_is_the_client_the_lab_gateway_names(lab: Any, tmp_path: Path) -> None:
    """Also in a read-only context: answering decisions is reading."""
    key = "sk-live-0123456789abcdef"
    env, prefix = endpoint_env(lab.config_path, tmp_path / "run")
    env["CONSOLE_READ_ONLY"] = "true"
    with serving(env, prefix, tmp_path) as endpoint, endpoint.client() as http:
        answer = http.get("/v1/decision", headers={"Authorization": f"Bearer {key}"})
        log = endpoint.log
    assert answer.status_code == 200, answer.text
    # The lab gateway of the same run dir: its secret file, its bearer parsing.
    settings = lab.settings.model_copy(update={"run_dir": tmp_path / "run"})
    gateway_id = client_from_headers(None, f"Bearer {key}", pseudonym_secret(settings))
    assert gateway_id is not None and re.fullmatch(r"key-[0-9a-f]{16}", gateway_id)
    assert answer.headers["X-AML-Client"] == gateway_id
    assert key not in str(answer.headers) and key not in answer.text
    assert key not in log.read_text()


def _raw_request(url: str, header_line: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /v1/decision HTTP/1.1\r\nHost: x\r\n" + header_line + b"\r\n\r\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


@pytest.mark.parametrize(
    "value",
    [
        b"a" * 10_240,
        b"bob\tmallory",
        b"bob/../../etc",
        "b\u00f6b".encode(),
        b"\xff\xfe<script>",
        b"bob\x1b[31m",
        b"bob\x00x",
    ],
    ids=["10KB", "tab", "path", "utf8", "obs-text", "escape", "nul"],
)
def test_a_hostile_client_header_is_refused_and_never_echoed(
    endpoint: Endpoint, value: bytes
) -> None:
    answer = _raw_request(endpoint.url, b"X-Client-Id: " + value)
    status = answer.split(b" ", 2)[1]
    # The HTTP parser itself refuses control characters (400); what reaches us is a 401.
    assert status in (b"401", b"400"), answer[:200]
    if b"\x1b" not in value and b"\x00" not in value:
        assert status == b"401", answer[:200]
    assert value not in answer and b"x-aml-client" not in answer.lower()
    with endpoint.client() as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/v1/decision", headers={"X-Client-Id": "alice"}).status_code == 200


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_stopped_mid_test_follows_the_failure_mode(
    lab: Any, tmp_path: Path, mode: str
) -> None:
    with private_redis(tmp_path / "redis") as server:
        env, prefix = endpoint_env(lab.config_path, tmp_path / "run", redis_failure_mode=mode)
        env["CONSOLE_REDIS__URL"] = server.url
        with serving(env, prefix, tmp_path) as endpoint, endpoint.client() as http:
            assert http.get("/v1/decision", headers={"X-Client-Id": "dave"}).status_code == 200
            server.stop()
            fresh = http.get("/v1/decision", headers={"X-Client-Id": "erin"})
            nginx = http.get("/v1/decision/nginx", headers={"X-Client-Id": "erin"})
            health = http.get("/healthz")
            text = http.get("/metrics").text
    assert health.status_code == 200 and health.json()["policy_store_up"] is False
    assert _metric(text, "aml_policy_redis_errors_total") >= 1
    assert _metric(text, "aml_policy_store_up") == 0
    if mode == "open":
        assert fresh.status_code == 200 and fresh.headers["X-AML-Client"] == "erin"
        assert nginx.status_code == 200
        assert _metric(text, 'aml_policy_decisions_total{outcome="allow"}') == 3
    else:
        assert fresh.status_code == 503 and fresh.headers["Retry-After"] == "1"
        assert nginx.status_code == 403 and nginx.headers["X-AML-Status"] == "503"
        assert _metric(text, 'aml_policy_decisions_total{outcome="error"}') == 2


def _offline_config(tmp_path: Path) -> Path:
    """A config whose Redis is never reached: the command fails before it would connect."""
    config = tmp_path / "config.toml"
    config.write_text(f'[redis]\nurl = "redis://127.0.0.1:{free_port()}/0"\n')
    return config


@pytest.mark.parametrize(
    ("listen", "said"),
    [
        ("nonsense", "is not host:port"),
        ("127.0.0.1:99999", "is not host:port"),
        (":8080", "is not host:port"),
        ("127.0.0.1:", "is not host:port"),
    ],
)
def test_a_bad_listen_address_is_one_line(tmp_path: Path, listen: str, said: str) -> None:
    env, _ = endpoint_env(_offline_config(tmp_path), tmp_path / "run")
    result = run_cli(["policy", "serve", "--listen", listen], env, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and said in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    env, _ = endpoint_env(_offline_config(tmp_path), tmp_path / "run")
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        result = run_cli(["policy", "serve", "--listen", f"127.0.0.1:{port}"], env, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], result.stderr
