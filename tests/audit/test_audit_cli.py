"""`aml-console audit tail|show|verify` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_helpers import KEY, event, lines, write_lines
from typer.testing import CliRunner

from console.audit import AuditLog
from console.cli.main import app

HOSTILE = "[bold]x[/bold]\x1b[31m"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A config file pointing at a fresh log, and the log itself."""
    monkeypatch.chdir(tmp_path)
    log_path = tmp_path / "audit.jsonl"
    config = tmp_path / "console.toml"
    config.write_text(
        f'[audit]\npath = "{log_path}"\nhmac_key = "{KEY.decode()}"\n', encoding="utf-8"
    )
    return config, AuditLog(log_path, KEY)


def invoke(config: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(config), "audit", *args])


def fill(log: AuditLog) -> None:
    log.append(event("run-intent", run_id="r1", step=None))
    log.append(event("step-intent", run_id="r1", step="block"))
    log.append(event("step-outcome", run_id="r1", step="block", after={"blocked": True}))
    log.append(event("run-outcome", run_id="r1", step=None))
    log.append(event("run-intent", run_id="r2", step=None))
    log.append(event("run-outcome", run_id="r2", step=None))


def test_verify_ok(setup):
    config, log = setup
    fill(log)
    result = invoke(config, "verify")
    assert result.exit_code == 0, result.output
    assert "OK, 6 records" in result.stdout


def test_verify_json(setup):
    config, log = setup
    fill(log)
    result = invoke(config, "verify", "--output", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {
        "path",
        "records",
        "ok",
        "first_bad_line",
        "first_bad_seq",
        "problem",
        "outcome_unknown",
    } <= data.keys()
    assert data["path"] == str(log.path) and data["records"] == 6 and data["ok"] is True


def test_verify_names_the_first_bad_record(setup):
    config, log = setup
    fill(log)
    items = lines(log.path)
    items[2] = items[2].replace(b'"alice"', b'"mallory"')
    write_lines(log.path, items)
    result = invoke(config, "verify")
    assert result.exit_code == 1
    assert "line 3 (seq 3)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = invoke(config, "verify", "-o", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["ok"], data["first_bad_line"], data["first_bad_seq"]) == (False, 3, 3)


def test_verify_truncated_log(setup):
    config, log = setup
    fill(log)
    write_lines(log.path, lines(log.path)[:4])
    result = invoke(config, "verify")
    assert result.exit_code == 1
    assert "last 2 record(s) were removed" in result.stderr


def test_verify_other_path(setup, tmp_path):
    config, _ = setup
    other = AuditLog(tmp_path / "elsewhere" / "x.jsonl", KEY)
    other.append(event())
    result = invoke(config, "verify", "--path", str(other.path), "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == str(other.path)


def test_verify_outcome_unknown_warns_but_passes(setup):
    config, log = setup
    log.append(event("run-intent", run_id="crashed", step=None))
    log.append(event("step-intent", run_id="crashed", step="rollback"))
    result = invoke(config, "verify")
    assert result.exit_code == 0, result.output
    assert "outcome unknown: run crashed step rollback" in result.stderr
    data = json.loads(invoke(config, "verify", "-o", "json").stdout)
    assert [i["step"] for i in data["outcome_unknown"]] == ["", "rollback"]


def test_verify_without_key(setup, tmp_path):
    _, log = setup
    log.append(event())
    config = tmp_path / "nokey.toml"
    config.write_text(f'[audit]\npath = "{log.path}"\n', encoding="utf-8")
    result = invoke(config, "verify")
    assert result.exit_code == 1
    assert "no audit HMAC key" in result.stderr


def test_tail(setup):
    config, log = setup
    fill(log)
    result = invoke(config, "tail", "-n", "2", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["seq"] for r in data] == [5, 6]
    assert {"seq", "time", "kind", "run_id", "hash", "hmac", "prev_hash"} <= data[0].keys()
    result = invoke(config, "tail")
    assert result.exit_code == 0 and "run-outcome" in result.stdout


def test_show(setup):
    config, log = setup
    fill(log)
    data = json.loads(invoke(config, "show", "r1", "-o", "json").stdout)
    assert [r["seq"] for r in data] == [1, 2, 3, 4]
    result = invoke(config, "show", "r1")
    assert result.exit_code == 0
    for word in ("seq", "kind", "step-intent", "block", "policy.block"):
        assert word in result.stdout
    missing = invoke(config, "show", "nope")
    assert missing.exit_code == 1 and "no audit records for run nope" in missing.stderr


@pytest.mark.parametrize("command", [["show", "evil"], ["tail"]])
def test_hostile_text_prints_literally(setup, command):
    config, log = setup
    log.append(event(run_id="evil", target=HOSTILE, error=HOSTILE, step=HOSTILE))
    result = invoke(config, *command)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout
    assert "[bold]x[/bold]" in result.stdout
    json_out = invoke(config, *command, "-o", "json").stdout
    assert "\x1b" not in json_out
    assert json.loads(json_out)[-1]["target"] == HOSTILE
