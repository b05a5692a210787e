"""The shipped NGINX snippet (docs/gateways/nginx.conf), rendered by the lab and run by a real
NGINX, in front of a real MLServer serving the digits model, asking the real policy endpoint
(``aml-console policy serve``, a subprocess) against the session lab's Redis. The mitigations
are the real runbooks (``aml-console runbook run``) on the same config; the lab gateway is not
involved: what is enforced here is enforced by NGINX."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from replay_stack import MLServer
from replay_support import digits
from support import REPO, TEST_PORTS, LabHandle, cli_env, free_port, run_cli, unavailable

from console.errors import LabError
from console.lab import nginx
from console.lab.process import log_tail
from console.private_files import write_private

POLICY_START_S = 60.0
"""Bound on the policy endpoint's start (~1 s alone; more with the other xdist worker busy)."""
BLOCK_LAG_S = 1.0
"""The endpoint's policy cache lasts at most a second, and a block is also announced on
pub/sub: the next request after the runbook returns is refused within it."""


@dataclass(frozen=True)
class Guarded:
    """NGINX (the shipped snippet) before MLServer, asking the policy endpoint."""

    url: str
    config: Path
    env: dict[str, str]
    model: str
    access_log: Path


def write_console_config(root: Path) -> Path:
    """A console config on the session lab's Redis, under a key prefix of this test's own."""
    run_dir = root / "run"
    key_file = root / "audit.key"
    write_private(key_file, "nginx-test-audit-key-" + secrets.token_hex(16))
    config = root / "console.toml"
    config.write_text(
        f"""\
environment = "test"
operator = "nginx-tester"
run_dir = "{run_dir}"
runbook_dirs = ["{REPO / "runbooks"}"]

[redis]
url = "redis://127.0.0.1:{TEST_PORTS["redis"]}/0"
key_prefix = "ngx{secrets.token_hex(4)}"

[audit]
path = "{run_dir / "audit" / "audit.jsonl"}"
hmac_key_file = "{key_file}"
""",
        encoding="utf-8",
    )
    return config


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture
def policy_endpoint(lab: LabHandle, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``aml-console --config <cfg> policy serve --listen 127.0.0.1:<port>``, once /healthz
    answers 200; its URL and config."""
    config = write_console_config(tmp_path)
    port = free_port()
    log = tmp_path / "policy.log"
    argv = [sys.executable, "-m", "console", "--config", str(config)]
    argv += ["policy", "serve", "--listen", f"127.0.0.1:{port}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=cli_env(config),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + POLICY_START_S
        with httpx.Client(base_url=url, trust_env=False, timeout=2) as http:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"policy serve exited with {proc.returncode}: {log_tail(log)}")
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"policy serve not up after {POLICY_START_S:.0f} s: {log_tail(log)}"
                    )
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        yield url, config
    finally:
        _stop(proc)


def start_nginx(prefix: Path, upstream: str, policy_url: str) -> nginx.RunningNginx:
    port = free_port()
    try:
        nginx.nginx_binary()
    except LabError as exc:
        unavailable(str(exc))
    return nginx.start_nginx(nginx.write_nginx_conf(prefix, port, [upstream], policy_url), port)


@pytest.fixture
def guarded(
    mlserver: MLServer, policy_endpoint: tuple[str, Path], tmp_path: Path
) -> Iterator[Guarded]:
    policy_url, config = policy_endpoint
    upstream = mlserver.url.removeprefix("http://")
    running = start_nginx(tmp_path / "nginx", upstream, policy_url)
    try:
        yield Guarded(
            running.url,
            config,
            cli_env(config),
            mlserver.model.name,
            running.layout.access_log,
        )
    finally:
        nginx.stop_nginx(running)


ROWS = digits().x_test[:4]
LOG_WAIT_S = 5.0
"""NGINX writes an access-log line after the answer is sent: a read right after can miss it."""


def infer(url: str, model: str, client: str | None, **headers: str) -> httpx.Response:
    """A V2 infer of ``ROWS`` for version 2, as ``client`` (``X-Client-Id``) if given."""
    if client is not None:
        headers["X-Client-Id"] = client
    tensor = {"name": "input", "shape": [len(ROWS), 64], "datatype": "FP32"}
    body = {"inputs": [{**tensor, "data": ROWS.ravel().tolist()}], "outputs": [{"name": "label"}]}
    with httpx.Client(base_url=url, trust_env=False, timeout=10) as http:
        return http.post(f"/v2/models/{model}/versions/2/infer", json=body, headers=headers)


def ask(gw: Guarded, client: str | None, **headers: str) -> httpx.Response:
    return infer(gw.url, gw.model, client, **headers)


def logged(gw: Guarded, pattern: str) -> str:
    """The access log once a line matches ``pattern`` (or as it is after ``LOG_WAIT_S``)."""
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        text = gw.access_log.read_text(encoding="utf-8") if gw.access_log.exists() else ""
        if re.search(pattern, text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def runbook(gw: Guarded, name: str, **params: str) -> None:
    args = ["--config", str(gw.config), "runbook", "run", name]
    for key, value in params.items():
        args += ["-p", f"{key}={value}"]
    done = run_cli([*args, "--yes"], gw.env)
    assert done.returncode == 0, done.stdout + done.stderr


def refused_within(gw: Guarded, client: str, status: int, seconds: float) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        answer = ask(gw, client)
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.02)


def test_an_allowed_client_gets_the_models_prediction_through_nginx(
    guarded: Guarded, sessions: dict[str, Any]
) -> None:
    answer = ask(guarded, "alice")
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["model_name"] == guarded.model and out["model_version"] == "2"
    [label] = [o for o in out["outputs"] if o["name"] == "label"]
    expected = sessions["2"].run(["label"], {"input": ROWS})[0]
    assert np.asarray(label["data"]).ravel().tolist() == np.asarray(expected).ravel().tolist()
    # NGINX logs the client the endpoint decided on ($aml_client).
    line = r'"POST /v2/models/\S+ HTTP/1.1" 200 .*client=alice '
    assert re.search(line, logged(guarded, line))


def test_block_client_runbook_refuses_the_clients_next_request_at_nginx(
    guarded: Guarded,
) -> None:
    # Both clients have a cached "not blocked" before the block is written.
    assert ask(guarded, "mallory").status_code == 200
    assert ask(guarded, "bob").status_code == 200
    runbook(guarded, "block-client", client="mallory", ttl="10m", reason="extraction via nginx")
    refused = refused_within(guarded, "mallory", 403, BLOCK_LAG_S)
    assert refused.status_code == 403, refused.text
    block_id = refused.headers["X-AML-Block-Id"]
    assert re.fullmatch(r"blk-[0-9a-f]{12}", block_id), block_id
    assert refused.json() == {"error": "blocked", "block_id": block_id}
    assert "extraction via nginx" not in refused.text  # the operator's reason stays inside
    assert ask(guarded, "bob").status_code == 200


def test_lower_query_budget_runbook_gives_429_with_retry_after_through_nginx(
    guarded: Guarded,
) -> None:
    runbook(guarded, "lower-query-budget", client="carol", qpm="3")
    if 60 - time.time() % 60 < 8:  # fixed one-minute windows: stay inside one
        time.sleep(60 - time.time() % 60 + 0.1)
    codes = [ask(guarded, "carol").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    fourth = ask(guarded, "carol")
    assert fourth.status_code == 429, fourth.text
    assert 1 <= int(fourth.headers["Retry-After"]) <= 60
    assert fourth.json()["error"] == "over the query budget"
    assert ask(guarded, "dave").status_code == 200


def test_a_request_without_a_client_identity_gets_401_and_a_bearer_key_is_never_logged(
    guarded: Guarded,
) -> None:
    anonymous = ask(guarded, None)
    assert anonymous.status_code == 401, anonymous.text
    assert "X-Client-Id" in anonymous.json()["error"]
    key = "sk-nginx-test-" + secrets.token_hex(16)
    keyed = ask(guarded, None, Authorization=f"Bearer {key}")
    assert keyed.status_code == 200, keyed.text
    line = r"\" 200 .*client=key-[0-9a-f]{16} "
    log = logged(guarded, line)
    assert re.search(line, log), log
    assert key not in log


def test_with_the_policy_endpoint_down_nginx_fails_closed_with_503(
    mlserver: MLServer, tmp_path: Path
) -> None:
    """The snippet's documented default: the subrequest cannot connect, auth_request answers
    500, and ``error_page 500`` turns it into a 503 for the client, never a proxied request."""
    nobody = f"http://127.0.0.1:{free_port()}"
    running = start_nginx(tmp_path / "nginx", mlserver.url.removeprefix("http://"), nobody)
    try:
        answer = infer(running.url, mlserver.model.name, "alice")
    finally:
        nginx.stop_nginx(running)
    assert answer.status_code == 503, answer.text
    assert answer.json() == {"error": "the policy endpoint is unreachable"}
    assert answer.headers["Retry-After"] == "5"


def test_the_renderer_refuses_what_nginx_could_not_read(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="is not HOST:PORT"):
        nginx.render_nginx_conf(8080, ["127.0.0.1:80; evil"], "http://127.0.0.1:1", tmp_path)
    with pytest.raises(LabError, match=r"is not http://HOST:PORT"):
        nginx.render_nginx_conf(8080, ["127.0.0.1:81"], "http://127.0.0.1:1/x", tmp_path)
    with pytest.raises(LabError, match="cannot hold"):
        nginx.render_nginx_conf(8080, ["127.0.0.1:81"], "http://127.0.0.1:1", tmp_path / "$x")


def test_a_missing_nginx_is_one_line_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nginx, "NGINX_BINARY", "nginx-that-is-not-installed")
    with pytest.raises(LabError) as err:
        nginx.nginx_binary()
    assert "apt-get install" in str(err.value) and "\n" not in str(err.value)


def test_the_lab_renders_the_docs_snippet_itself(tmp_path: Path) -> None:
    """What the other tests run is docs/gateways/nginx.conf (through the package-data link),
    every directive of it, with only the placeholders filled."""
    docs = REPO / "docs" / "gateways" / "nginx.conf"
    assert nginx.template_path().resolve() == docs.resolve()
    rendered = nginx.render_nginx_conf(
        8080, ["127.0.0.1:81", "127.0.0.1:82"], "http://127.0.0.1:18090", tmp_path
    )
    lines = {line.strip() for line in rendered.splitlines()}
    directives = [
        line.strip()
        for line in docs.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert [d for d in directives if "{{" not in d and d not in lines] == []
    assert {"server 127.0.0.1:81;", "server 127.0.0.1:82;", "server 127.0.0.1:18090;"} <= lines
    assert "listen 127.0.0.1:8080;" in lines
    assert f'pid "{tmp_path / "nginx.pid"}";' in lines
    assert not [line for line in rendered.splitlines() if "{{" in line and "#" not in line]
