"""Both rollbacks end to end: records written by real runbook runs (real Redis), the log rolled
back as an attacker with the log's directory would, then `aml-console audit verify` and the
next run, as an operator meets them.

Only the CLI is driven here (no import of the witness API), so this file also shows what the
console did before the witness: both rollbacks verified OK and the next run went ahead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from audit_console import AuditConsole, make_console


@pytest.fixture
def console(tmp_path: Path, redis_url: str) -> AuditConsole:
    return make_console(tmp_path / "console", redis_url)


def records(console: AuditConsole) -> int:
    return len(console.log_path.read_bytes().splitlines())


def checkpoint(console: AuditConsole) -> Path:
    return console.log_path.with_name(console.log_path.name + ".head")


def test_log_and_checkpoint_rolled_back_together(console: AuditConsole, tmp_path: Path):
    assert console.block("early-client").returncode == 0
    kept = records(console)
    shutil.copy2(console.log_path, tmp_path / "old.jsonl")
    shutil.copy2(checkpoint(console), tmp_path / "old.head")
    done = console.block("incriminating-client")
    assert done.returncode == 0, done.stderr
    assert console.blocked("incriminating-client")
    total = records(console)
    # Roll back: the older log and its older, validly signed checkpoint.
    shutil.copy2(tmp_path / "old.jsonl", console.log_path)
    shutil.copy2(tmp_path / "old.head", checkpoint(console))

    code, data = console.verify_json()
    assert code == 1 and data["ok"] is False
    assert data["problem"].startswith(
        f"log is behind its witness: {kept} records, witness has {total}"
    )
    plain = console.cli("audit", "verify")
    assert plain.returncode == 1
    assert len(plain.stderr.strip().splitlines()) == 1
    assert f"log is behind its witness: {kept} records, witness has {total}" in plain.stderr

    refused = console.block("next-client")
    assert refused.returncode == 1
    assert "behind its witness" in refused.stderr and "reset-witness --yes" in refused.stderr
    assert not console.blocked("next-client")


def test_log_and_checkpoint_deleted(console: AuditConsole):
    assert console.block("first-client").returncode == 0
    total = records(console)
    console.log_path.unlink()
    checkpoint(console).unlink()

    code, data = console.verify_json()
    assert code == 1
    assert data["problem"].startswith(f"log missing but witness records {total} records")
    plain = console.cli("audit", "verify")
    assert plain.returncode == 1
    assert f"log missing but witness records {total} records" in plain.stderr

    refused = console.block("second-client")  # would start a fresh chain
    assert refused.returncode == 1
    assert "would start a new chain" in refused.stderr
    assert not console.blocked("second-client")

    reset = console.cli("audit", "reset-witness", "--yes")
    assert reset.returncode == 0, reset.stderr
    again = console.block("second-client")
    assert again.returncode == 0, again.stderr
    code, data = console.verify_json()
    assert code == 0 and data["ok"] is True
    shown = console.cli("audit", "tail", "-o", "json")
    assert '"witness-reset"' in shown.stdout
