"""The witness: the log's signed head kept away from the log's directory, so rolling the log
back together with its checkpoint, or deleting both, no longer verifies."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from audit_helpers import KEY, event, lines
from typer.testing import CliRunner

from console.audit import AuditLog, verify_log
from console.audit.witness import default_witness_path, load_witness
from console.cli.main import app
from console.config import Settings, load_settings
from console.errors import AuditWriteError


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "console.toml"
    path.write_text(
        f'run_dir = "{tmp_path / "run"}"\n[audit]\nhmac_key = "{KEY.decode()}"\n',
        encoding="utf-8",
    )
    return path


def configured_log(config: Path) -> AuditLog:
    """The log exactly as the console opens it: witness on by default."""
    return AuditLog.from_settings(load_settings(config))


def invoke(config: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(config), "audit", *args])


def fill(log: AuditLog, n: int, run: str = "r") -> None:
    for i in range(n):
        log.append(event("step-intent" if i % 2 == 0 else "step-outcome", run, step=f"s{i // 2}"))


def snapshot(log: AuditLog, where: Path) -> None:
    where.mkdir()
    shutil.copy2(log.path, where / "log")
    shutil.copy2(log.checkpoint_path, where / "checkpoint")


def restore(log: AuditLog, where: Path) -> None:
    shutil.copy2(where / "log", log.path)
    shutil.copy2(where / "checkpoint", log.checkpoint_path)


# Where it lives, and what every append does to it ----------------------------------------


def test_on_by_default_outside_the_logs_directory(config: Path, state_home: Path):
    log = configured_log(config)
    assert log.witness_path is not None
    assert log.witness_path == default_witness_path(log.path)
    assert log.witness_path.is_relative_to(state_home / "aml-console" / "witness")
    assert not log.witness_path.is_relative_to(log.path.parent)
    fill(log, 5)
    witness = load_witness(log.witness_path, KEY)
    assert witness is not None
    assert (witness.count, witness.head) == (5, log.tail(1)[0].hash)
    assert stat.S_IMODE(log.witness_path.stat().st_mode) == 0o600
    for directory in (log.witness_path.parent, log.witness_path.parent.parent, state_home):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert stat.S_IMODE(log.path.parent.stat().st_mode) == 0o700
    result = invoke(config, "verify", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["ok"], data["records"], data["witness_records"]) == (True, 5, 5)
    assert data["witness_path"] == str(log.witness_path)
    assert "witness" not in invoke(config, "verify").stderr  # nothing to warn about


def test_one_witness_per_log(tmp_path: Path):
    a, b = tmp_path / "a" / "audit.jsonl", tmp_path / "b" / "audit.jsonl"
    assert default_witness_path(a) != default_witness_path(b)
    same_a = tmp_path / "b" / ".." / "a" / "audit.jsonl"
    assert default_witness_path(a) == default_witness_path(same_a)


def test_configured_path_and_off_switch(tmp_path: Path):
    chosen = tmp_path / "elsewhere" / "my.witness"
    settings = Settings(run_dir=tmp_path, audit={"hmac_key": "k", "witness_path": chosen})  # type: ignore[arg-type]
    log = AuditLog.from_settings(settings)
    log.append(event())
    assert log.witness_path == chosen and chosen.is_file()
    off = Settings(run_dir=tmp_path / "off", audit={"hmac_key": "k", "witness": "none"})  # type: ignore[arg-type]
    log = AuditLog.from_settings(off)
    assert log.witness_path is None
    log.append(event())


def test_an_existing_log_gets_its_witness_on_the_next_append(config: Path):
    log = configured_log(config)
    plain = AuditLog(log.path, KEY)  # as written before the witness existed
    fill(plain, 3)
    result = invoke(config, "verify")
    assert result.exit_code == 0
    assert "no witness at" in result.stderr
    log.append(event())
    assert load_witness(log.witness_path, KEY).count == 4  # type: ignore[arg-type, union-attr]
    result = invoke(config, "verify")
    assert result.exit_code == 0 and "witness" not in result.stderr


# Rollback (a): an older valid checkpoint put back with the log cut to match it ----------


def test_rollback_to_an_older_checkpoint_fails_verify(config: Path, tmp_path: Path):
    log = configured_log(config)
    fill(log, 4)
    snapshot(log, tmp_path / "old")
    fill(log, 4, run="later")
    restore(log, tmp_path / "old")
    # The checkpoint alone is fooled: log and checkpoint agree.
    assert verify_log(log.path, KEY, log.checkpoint_path).ok
    result = invoke(config, "verify")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: audit log {log.path}: FAILED at line 5 (seq 5): log is behind its witness: "
        f"4 records, witness has 8 (witness {log.witness_path})"
    ]
    data = json.loads(invoke(config, "verify", "-o", "json").stdout)
    assert (data["ok"], data["records"], data["witness_records"]) == (False, 4, 8)


def test_the_writer_refuses_to_append_behind_its_witness(config: Path, tmp_path: Path):
    log = configured_log(config)
    fill(log, 4)
    snapshot(log, tmp_path / "old")
    fill(log, 2)
    restore(log, tmp_path / "old")
    witness_before = log.witness_path.read_bytes()  # type: ignore[union-attr]
    behind = "log is behind its witness: 4 records, witness has 6"
    with pytest.raises(AuditWriteError, match=behind):
        log.append(event())
    with pytest.raises(AuditWriteError, match="reset-witness --yes"):
        log.check_writable()
    assert len(lines(log.path)) == 4
    assert log.witness_path.read_bytes() == witness_before  # type: ignore[union-attr]


def test_a_rewritten_log_of_the_same_length_fails(config: Path, tmp_path: Path):
    log = configured_log(config)
    fill(log, 3)
    other = AuditLog(tmp_path / "forged" / "audit.jsonl", KEY)  # a whole other chain
    fill(other, 5, run="forged")
    shutil.copy2(other.path, log.path)
    shutil.copy2(other.checkpoint_path, log.checkpoint_path)
    result = invoke(config, "verify")
    assert result.exit_code == 1
    assert "log does not hold its witness' head: record seq 3" in result.stderr
    with pytest.raises(AuditWriteError, match="does not hold its witness' head"):
        log.append(event())


def test_a_modified_witness_fails(config: Path):
    log = configured_log(config)
    fill(log, 2)
    path = log.witness_path
    assert path is not None
    path.write_bytes(path.read_bytes().replace(b'"count":2', b'"count":1'))
    result = invoke(config, "verify")
    assert result.exit_code == 1
    assert f"witness {path} does not match its HMAC" in result.stderr
    with pytest.raises(AuditWriteError, match="does not match its HMAC"):
        log.append(event())


def test_a_witness_of_another_log_is_refused(tmp_path: Path):
    shared = tmp_path / "shared.witness"
    first = AuditLog(tmp_path / "a" / "audit.jsonl", KEY, witness_path=shared)
    first.append(event())
    second = AuditLog(tmp_path / "b" / "audit.jsonl", KEY, witness_path=shared)
    with pytest.raises(AuditWriteError, match="witness of another log"):
        second.append(event())
    report = verify_log(second.path, KEY, second.checkpoint_path, shared)
    assert not report.ok


# Rollback (b): log and checkpoint deleted, so the next run would start a fresh chain -----


def test_deleted_log_and_checkpoint_fail_verify_and_block_a_fresh_chain(config: Path):
    log = configured_log(config)
    fill(log, 6)
    log.path.unlink()
    log.checkpoint_path.unlink()
    result = invoke(config, "verify")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: audit log {log.path}: FAILED: log missing but witness records 6 records "
        f"(witness {log.witness_path})"
    ]
    fresh = configured_log(config)
    with pytest.raises(AuditWriteError, match="would start a new chain, but its witness") as err:
        fresh.append(event())
    assert "aml-console audit reset-witness --yes" in str(err.value)
    with pytest.raises(AuditWriteError, match="would start a new chain"):
        fresh.check_writable()
    assert load_witness(log.witness_path, KEY).count == 6  # type: ignore[arg-type, union-attr]
    result = invoke(config, "verify")
    assert result.exit_code == 1
    assert "log is behind its witness: 0 records, witness has 6" in result.stderr


def test_reset_witness_needs_yes_and_is_recorded(config: Path):
    log = configured_log(config)
    fill(log, 6)
    log.path.unlink()
    log.checkpoint_path.unlink()
    refused = invoke(config, "reset-witness")
    assert refused.exit_code == 1 and "pass --yes" in refused.stderr
    done = invoke(config, "reset-witness", "--yes")
    assert done.exit_code == 0, done.output
    assert "it held 6 records" in done.stdout and "record seq 1" in done.stdout
    [reset] = log.records()
    assert (reset.kind, reset.seq, reset.target) == ("witness-reset", 1, str(log.witness_path))
    assert reset.before is not None and reset.before["count"] == 6
    assert reset.operator == load_settings(config).operator
    witness = load_witness(log.witness_path, KEY)  # type: ignore[arg-type]
    assert witness is not None and (witness.count, witness.head) == (1, reset.hash)
    assert invoke(config, "verify").exit_code == 0
    fill(configured_log(config), 2)  # the console writes again
    assert json.loads(invoke(config, "verify", "-o", "json").stdout)["records"] == 3


def test_reset_witness_after_a_rollback_keeps_the_log(config: Path, tmp_path: Path):
    log = configured_log(config)
    fill(log, 4)
    snapshot(log, tmp_path / "old")
    fill(log, 4)
    restore(log, tmp_path / "old")
    assert invoke(config, "reset-witness", "--yes").exit_code == 0
    assert [r.kind for r in log.records()][-1] == "witness-reset"
    report = invoke(config, "verify", "-o", "json")
    assert report.exit_code == 0 and json.loads(report.stdout)["records"] == 5


def test_reset_witness_refused_in_read_only_mode(config: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CONSOLE_READ_ONLY", "1")
    result = invoke(config, "reset-witness", "--yes")
    assert result.exit_code == 1 and "read-only" in result.stderr


def test_no_home_for_the_witness_refuses_writes_not_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("XDG_STATE_HOME")

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    log = AuditLog.from_settings(Settings(run_dir=tmp_path, audit={"hmac_key": "k"}))  # type: ignore[arg-type]
    assert log.tail() == []
    with pytest.raises(AuditWriteError, match="set XDG_STATE_HOME or audit.witness_path"):
        log.check_writable()
    with pytest.raises(AuditWriteError, match="no home directory for the audit witness"):
        log.append(event())
    assert not log.path.exists()
