"""The policy endpoint as a real ``aml-console policy serve`` process, a private redis-server
to stop mid-test, and a MONITOR that records exactly the Redis commands of one key prefix."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from support import REPO, cli_env, free_port, run_cli, unavailable

AUDIT_KEY = "policy-endpoint-tests-audit-key-0123456789"
START_DEADLINE_S = 30.0


@dataclass
class Endpoint:
    url: str
    env: dict[str, str]
    prefix: str
    process: subprocess.Popen[str]
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)

    def runbook(self, name: str, **params: str) -> None:
        args = ["runbook", "run", name]
        for key, value in params.items():
            args += ["-p", f"{key}={value}"]
        proc = run_cli([*args, "--yes"], self.env)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def endpoint_env(config: Path, run_dir: Path, **policy: str) -> tuple[dict[str, str], str]:
    prefix = f"pe{secrets.token_hex(4)}"
    env = cli_env(config)
    env.update(
        {
            "CONSOLE_RUN_DIR": str(run_dir),
            "CONSOLE_REDIS__KEY_PREFIX": prefix,
            "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
            "CONSOLE_AUDIT__HMAC_KEY": AUDIT_KEY,
            "CONSOLE_OPERATOR": "policy-tester",
            "CONSOLE_RUNBOOK_DIRS": json.dumps([str(REPO / "runbooks")]),
        }
    )
    for key, value in policy.items():
        env[f"CONSOLE_POLICY_ENDPOINT__{key.upper()}"] = value
    return env, prefix


@contextmanager
def serving(env: dict[str, str], prefix: str, folder: Path) -> Iterator[Endpoint]:
    """``python -m console policy serve`` (the ``aml-console`` script's entry) on a free port,
    ready (``/healthz``) and subscribed to the change feed; stopped after."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "policy-serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "console", "policy", "serve", "--listen", f"127.0.0.1:{port}"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    endpoint = Endpoint(f"http://127.0.0.1:{port}", env, prefix, process, log)
    try:
        _wait_ready(endpoint)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(endpoint: Endpoint) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    with endpoint.client() as http:
        while time.monotonic() < deadline:
            if endpoint.process.poll() is not None:
                raise AssertionError(f"policy serve exited: {endpoint.log.read_text()[-2000:]}")
            try:
                if http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise AssertionError(f"policy serve not ready: {endpoint.log.read_text()[-2000:]}")


def subscribed(redis_url: str, channel: str) -> bool:
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        counts = dict(admin.pubsub_numsub(channel))
        return int(counts.get(channel, 0)) >= 1
    finally:
        admin.close()


def wait_until(check: Any, deadline_s: float, step: float = 0.02) -> float | None:
    """Seconds until ``check()`` was true, or None if it never was within ``deadline_s``."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if check():
            return time.monotonic() - started
        time.sleep(step)
    return None


def stay_inside_one_window(margin_s: float = 8.0) -> None:
    """Fixed one-minute windows: start a budget check with ``margin_s`` left in the window."""
    if 60 - time.time() % 60 < margin_s:
        time.sleep(60 - time.time() % 60 + 0.1)


@dataclass
class PrivateRedis:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def private_redis(folder: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own on a free port (the test stops it when it likes)."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server not found: apt-get install -y redis-server")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    process = subprocess.Popen(argv, cwd=folder, stdout=subprocess.DEVNULL)
    server = PrivateRedis(f"redis://127.0.0.1:{port}/0", process)
    try:
        client = redis.Redis.from_url(server.url)
        if wait_until(lambda: _pings(client), 10.0, 0.05) is None:
            unavailable(f"redis-server did not answer on port {port}")
        client.close()
        yield server
    finally:
        if process.poll() is None:
            server.stop()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@dataclass
class CommandLog:
    """Commands Redis executed that name ``prefix``, seen through MONITOR between two marks."""

    prefix: str
    commands: list[str] = field(default_factory=list)


@contextmanager
def monitored(redis_url: str, prefix: str) -> Iterator[CommandLog]:
    """Record, with the real Redis MONITOR, every command that mentions ``prefix`` while the
    block runs. Marker commands (ECHO) before and after make the capture exact: nothing sent
    inside the block can be missed, nothing after it counted."""
    seen = CommandLog(prefix)
    start, end = f"{prefix}-monitor-start", f"{prefix}-monitor-end"
    marks: dict[str, threading.Event] = {start: threading.Event(), end: threading.Event()}
    watcher = redis.Redis.from_url(redis_url, decode_responses=True)

    def listen() -> None:
        with watcher.monitor() as monitor:
            for event in monitor.listen():
                command = str(event.get("command", ""))
                for mark, flag in marks.items():
                    if mark in command:
                        flag.set()
                if marks[end].is_set():
                    return
                if marks[start].is_set() and prefix in command and start not in command:
                    seen.commands.append(command)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    sender = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        while not marks[start].wait(0.05):
            sender.echo(start)
        yield seen
        sender.echo(end)
        assert marks[end].wait(10.0), "MONITOR never saw the end mark"
    finally:
        sender.echo(end)  # ends the watcher's loop even when the block failed
        sender.close()
        thread.join(10.0)
        watcher.close()
