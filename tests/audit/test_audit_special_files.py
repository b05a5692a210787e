"""A FIFO (or a symlink to one) where a log, checkpoint or witness should be: refused with one
line naming the path, never a hang (opening a FIFO for reading blocks until a writer comes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from audit_helpers import KEY, event
from typer.testing import CliRunner

from console.audit import AuditLog, verify_log
from console.cli.main import app
from console.errors import AuditError, AuditWriteError

pytestmark = pytest.mark.timeout(10)


def config_for(tmp_path: Path, log_path: Path) -> Path:
    config = tmp_path / "console.toml"
    config.write_text(
        f'[audit]\npath = "{log_path}"\nhmac_key = "{KEY.decode()}"\n', encoding="utf-8"
    )
    return config


def invoke(config: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(config), "audit", *args])


def test_verify_refuses_a_fifo_as_the_log(tmp_path: Path):
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo)
    result = invoke(config_for(tmp_path, fifo), "verify")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: audit log {fifo} is not a regular file (a FIFO)"
    ]


def test_verify_refuses_a_symlink_to_a_fifo(tmp_path: Path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "audit.jsonl"
    link.symlink_to(fifo)
    config = config_for(tmp_path, tmp_path / "configured.jsonl")
    result = invoke(config, "verify", "--path", str(link))
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"audit log {link} is not a regular file" in result.stderr


def test_verify_refuses_a_fifo_as_the_checkpoint(tmp_path: Path):
    log = AuditLog(tmp_path / "audit.jsonl", KEY)
    log.append(event())
    log.checkpoint_path.unlink()
    os.mkfifo(log.checkpoint_path)
    result = invoke(config_for(tmp_path, log.path), "verify")
    assert result.exit_code == 1
    assert f"checkpoint {log.checkpoint_path} is not a regular file" in result.stderr


def test_verify_log_api_refuses_a_fifo(tmp_path: Path):
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(AuditError, match="not a regular file"):
        verify_log(fifo, KEY, tmp_path / "audit.jsonl.head")


@pytest.mark.parametrize("command", [["tail"], ["show", "run-1"]])
def test_reading_commands_refuse_a_fifo(tmp_path: Path, command: list[str]):
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo)
    result = invoke(config_for(tmp_path, fifo), *command)
    assert result.exit_code == 1
    assert f"audit log {fifo} is not a regular file" in result.stderr


def test_a_symlink_to_a_regular_log_still_verifies(tmp_path: Path):
    log = AuditLog(tmp_path / "real" / "audit.jsonl", KEY)
    log.append(event())
    link = tmp_path / "audit.jsonl"
    link.symlink_to(log.path)
    (tmp_path / "audit.jsonl.head").symlink_to(log.checkpoint_path)
    config = config_for(tmp_path, tmp_path / "configured.jsonl")
    result = invoke(config, "verify", "--path", str(link))
    assert result.exit_code == 0, result.output


def test_a_fifo_as_the_witness_is_refused_by_writer_and_verify(tmp_path: Path):
    witness = tmp_path / "state" / "log.witness"
    witness.parent.mkdir()
    os.mkfifo(witness)
    log = AuditLog(tmp_path / "audit.jsonl", KEY, witness_path=witness)
    with pytest.raises(AuditWriteError, match=f"witness {witness} is not a regular file"):
        log.append(event())
    report = verify_log(log.path, KEY, log.checkpoint_path, witness)
    assert not report.ok and report.problem == f"witness {witness} is not a regular file (a FIFO)"
