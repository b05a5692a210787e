"""A console for the audit tests' end-to-end runs: config file, env, and the CLI as a user runs it.

Uses the private redis-server of ``conftest.redis_url`` (policies and locks live there), its own
run dir, key prefix and witness directory, so nothing is shared with other tests.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit_helpers import KEY
from runbook_texts import block_pause_budget

REPO = Path(__file__).resolve().parents[2]

PAUSING_RUNBOOK = block_pause_budget("block-then-wait", "audit test", "2s")


@dataclass(frozen=True)
class AuditConsole:
    root: Path
    config: Path
    env: dict[str, str]
    redis_url: str
    key_prefix: str

    @property
    def log_path(self) -> Path:
        return self.root / "run" / "audit" / "audit.jsonl"

    @property
    def witness_dir(self) -> Path:
        return Path(self.env["XDG_STATE_HOME"]) / "aml-console" / "witness"

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "console", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "console", *args],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def blocked(self, client: str) -> bool:
        import redis

        client_ = redis.Redis.from_url(self.redis_url)
        try:
            return client_.exists(f"{self.key_prefix}:policy:block:{client}") == 1
        finally:
            client_.close()

    def block(self, client: str) -> subprocess.CompletedProcess[str]:
        return self.cli(
            "runbook",
            "run",
            "block-client",
            "-p",
            f"client={client}",
            "-p",
            "reason=audit witness test",
            "--yes",
        )

    def verify_json(self) -> tuple[int, dict[str, Any]]:
        result = self.cli("audit", "verify", "--output", "json")
        return result.returncode, json.loads(result.stdout)


def make_console(root: Path, redis_url: str) -> AuditConsole:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "console.toml"
    prefix = f"t{secrets.token_hex(4)}"
    config.write_text(
        f"""\
environment = "test"
operator = "audit-tester"
run_dir = "{root / "run"}"
runbook_dirs = ["{REPO / "runbooks"}"]

[redis]
url = "{redis_url}"
key_prefix = "{prefix}"

[audit]
hmac_key = "{KEY.decode()}"

[locks]
lease_s = 30
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSOLE_")}
    env["CONSOLE_CONFIG"] = str(config)
    env["XDG_STATE_HOME"] = str(root / "state")
    return AuditConsole(root, config, env, redis_url, prefix)


def killed_mid_run(console: AuditConsole, client: str) -> str:
    """Start the pausing runbook, kill -9 it while step ``pause`` is applying; its run id."""
    runbook = console.root / "block-then-wait.yaml"
    runbook.write_text(PAUSING_RUNBOOK, encoding="utf-8")
    proc = console.start("runbook", "run", str(runbook), "-p", f"client={client}", "--yes")
    try:
        state = _wait_for_step(console, proc, "pause", "applying")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    return str(state["run_id"])


def _wait_for_step(
    console: AuditConsole, proc: subprocess.Popen[str], step: str, status: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for path in (console.root / "run" / "runs").glob("*/state.json"):
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if any(s["id"] == step and s["status"] == status for s in state["steps"]):
                return dict(state)
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the run exited early: {err}")
        time.sleep(0.02)
    raise AssertionError(f"step {step} never reached {status}")
