"""http.request: no proxy from the environment, the configured proxy only if its host is
allowed, and URL credentials never shown or written."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from runbook_support import Console, audit_records
from support import free_port, run_cli
from typer.testing import CliRunner

from console.cli.main import app

STATUS_CALL = """\
name: status-call
target: "gateway:status"
steps:
  - id: call
    action: http.request
    with: {method: GET, url: "URL", expect_status: [200]}
"""


class Trap:
    """A real listening socket standing for a proxy: records whatever reaches it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536) or b"(connected)")
                except OSError:
                    self.received.append(b"(connected)")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    server = Trap()
    yield server
    server.close()


def _status_url(console: Console) -> str:
    return f"{console.settings.alertmanager.url}/api/v2/status"


def _proxied_env(console: Console, proxy: str) -> dict[str, str]:
    env = {k: v for k, v in console.env.items() if k.lower() != "no_proxy"}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env[name] = proxy
    return env


def test_the_environment_proxy_receives_nothing(
    console: Console, tmp_path: Path, trap: Trap
) -> None:
    runbook = tmp_path / "status-call.yaml"
    runbook.write_text(STATUS_CALL.replace("URL", _status_url(console)))
    env = _proxied_env(console, f"http://127.0.0.1:{trap.port}")
    result = run_cli(["runbook", "run", str(runbook), "--yes", "-o", "json"], env)
    trap.close()
    assert trap.received == []
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["run"]["status"] == "succeeded"


def test_the_configured_proxy_is_used_only_if_its_host_is_allowed(
    console: Console, tmp_path: Path, trap: Trap
) -> None:
    runbook = tmp_path / "status-call.yaml"
    runbook.write_text(STATUS_CALL.replace("URL", _status_url(console)))
    foreign = {**console.env, "CONSOLE_HTTP_ACTION__PROXY": "http://proxy.example:3128"}
    refused = run_cli(["runbook", "run", str(runbook), "--yes"], foreign)
    assert refused.returncode == 1
    assert "http_action.proxy 'http://proxy.example:3128': host 'proxy.example' is not allowed" in (
        refused.stderr
    )
    assert audit_records(console) == []  # refused at plan time
    allowed = {**console.env, "CONSOLE_HTTP_ACTION__PROXY": f"http://127.0.0.1:{trap.port}"}
    run_cli(["runbook", "run", str(runbook), "--yes"], allowed)
    trap.close()
    assert trap.received and trap.received[0].startswith(b"GET http://127.0.0.1:")


CREDENTIALS_IN_URL = """\
name: hook-with-credentials
target: "gateway:hook"
steps:
  - id: hook
    action: http.request
    with:
      method: POST
      url: "http://oncall:pa55w0rd@127.0.0.1:PORT/hook?token=t0ken"
      json: {a: 1}
"""


def test_url_credentials_are_never_shown_or_written(console: Console, tmp_path: Path) -> None:
    runbook = tmp_path / "hook.yaml"
    runbook.write_text(CREDENTIALS_IN_URL.replace("PORT", str(free_port())))
    planned = CliRunner().invoke(app, ["runbook", "run", str(runbook), "--dry-run"])
    assert planned.exit_code == 0, planned.output
    assert "request: POST http://***@127.0.0.1:" in planned.output
    as_json = CliRunner().invoke(app, ["runbook", "run", str(runbook), "--dry-run", "-o", "json"])
    ran = run_cli(["runbook", "run", str(runbook), "--yes", "-o", "json"], console.env)
    assert ran.returncode == 1
    assert "step hook failed" in ran.stderr and "cannot connect" in ran.stderr
    written = [p.read_text() for p in console.run_dir.rglob("*") if p.is_file()]
    for text in [planned.output, as_json.output, ran.stdout, ran.stderr, *written]:
        assert "pa55w0rd" not in text and "t0ken" not in text
    bad = tmp_path / "ftp.yaml"
    bad.write_text(CREDENTIALS_IN_URL.replace("http://", "ftp://"))
    result = CliRunner().invoke(app, ["runbook", "validate", str(bad)])
    assert result.exit_code == 1 and "is not an http(s) URL" in result.output
    assert "pa55w0rd" not in result.output and "ftp://***@127.0.0.1" in result.output


def test_a_url_parameter_is_shown_without_its_credentials(console: Console, tmp_path: Path) -> None:
    runbook = tmp_path / "hook-param.yaml"
    runbook.write_text(
        "name: hook-param\ntarget: gateway:hook\n"
        "parameters:\n  hook: {type: string, required: true}\n"
        "steps:\n  - id: hook\n    action: http.request\n"
        '    with: {method: POST, url: "{{ params.hook }}"}\n'
    )
    hook = f"http://oncall:pa55w0rd@127.0.0.1:{free_port()}/hook"
    for output in ("table", "json"):
        args = ["runbook", "run", str(runbook), "-p", f"hook={hook}", "--dry-run", "-o", output]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "pa55w0rd" not in result.output and "http://***@127.0.0.1:" in result.output
