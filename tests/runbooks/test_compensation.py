"""A step that fails, however it fails, is an outcome: what was applied is undone and audited,
the lease is released, and no secret leaks into output, files or the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runbook_support import Console, policy_key, redis_client
from support import run_cli

BLOCK_THEN_HOOK = """\
name: block-then-hook
target: "client:{{ params.client }}"
parameters:
  client: {type: string, required: true, pattern: '^[a-z0-9-]+$'}
  token: {type: secret, required: true}
steps:
  - id: block
    action: policy.block_client
    with: {client: "{{ params.client }}", ttl: 1h, reason: test}
  - id: hook
    action: http.request
    with:
      method: POST
      url: "http://127.0.0.1:PORT/hook?token={{ params.token | url }}&c={{ params.client }}"
      headers: {Authorization: "Bearer {{ params.token }}"}
"""


@pytest.mark.parametrize("port", ["99999", "1"])
def test_unexpected_and_transport_failures_compensate_and_never_leak(
    console: Console, tmp_path: Path, port: str
) -> None:
    canary = "CAN/ARY+s3cr3t"
    runbook = tmp_path / "block-then-hook.yaml"
    runbook.write_text(BLOCK_THEN_HOOK.replace("PORT", port))
    result = run_cli(
        [
            "runbook",
            "run",
            str(runbook),
            "-p",
            "client=hooked",
            "-p",
            f"token={canary}",
            "--yes",
            "-o",
            "json",
        ],
        console.env,
    )
    assert result.returncode == 1
    assert "step hook failed" in result.stderr and "Traceback" not in result.stderr
    run = json.loads(result.stdout)["run"]
    assert run["status"] == "compensated"
    assert redis_client(console).get(policy_key(console, "block", "hooked")) is None
    lock = redis_client(console).get(f"{console.settings.redis.key_prefix}:lock:client:hooked")
    assert lock is None  # finished (compensated) runs release their lease
    forms = [canary, "CAN%2FARY%2Bs3cr3t", "CAN%2FARY+s3cr3t"]
    files = [p for p in console.run_dir.rglob("*") if p.is_file()]
    for text in [result.stdout, result.stderr] + [p.read_text() for p in files]:
        for form in forms:
            assert form not in text
    records = [json.loads(x) for x in console.settings.audit_path.read_text().splitlines()]
    assert records[-1]["kind"] == "run-outcome" and records[-1]["result"] == "compensated"
