"""Outcome pairing: an outcome answers the intent it belongs to (same run, same step, same
family), so a run interrupted and later resumed or aborted verifies without stale "outcome
unknown" warnings, while an intent nobody answered still warns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_console import AuditConsole, killed_mid_run, make_console
from audit_helpers import KEY, event
from typer.testing import CliRunner

from console.audit import AuditLog
from console.cli.main import app


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, AuditLog]:
    monkeypatch.chdir(tmp_path)
    log_path = tmp_path / "audit.jsonl"
    config = tmp_path / "console.toml"
    config.write_text(
        f'[audit]\npath = "{log_path}"\nhmac_key = "{KEY.decode()}"\n', encoding="utf-8"
    )
    return config, AuditLog(log_path, KEY)


def verify(config: Path) -> tuple[int, dict[str, object], str]:
    result = CliRunner().invoke(app, ["--config", str(config), "audit", "verify", "-o", "json"])
    text = CliRunner().invoke(app, ["--config", str(config), "audit", "verify"])
    return result.exit_code, json.loads(result.stdout), text.stderr


def unknown(data: dict[str, object]) -> list[tuple[str, str, str]]:
    items = data["outcome_unknown"]
    assert isinstance(items, list)
    return [(i["run_id"], i["step"], i["kind"]) for i in items]


def crashed_in_step(log: AuditLog, run: str) -> None:
    """What a kill -9 during step `pause` leaves: the step's intent and the run's, open."""
    log.append(event("run-intent", run_id=run, step=None, result="planned"))
    log.append(event("step-intent", run_id=run, step="block"))
    log.append(event("step-outcome", run_id=run, step="block"))
    log.append(event("step-intent", run_id=run, step="pause"))


def test_resumed_run_has_no_stale_warning(setup):
    config, log = setup
    crashed_in_step(log, "r1")
    # `runbook resume`: a new run intent, the unknown step re-planned and applied, the rest.
    log.append(event("run-intent", run_id="r1", step=None, result="resume"))
    log.append(event("step-intent", run_id="r1", step="pause"))
    log.append(event("step-outcome", run_id="r1", step="pause"))
    log.append(event("step-intent", run_id="r1", step="budget"))
    log.append(event("step-outcome", run_id="r1", step="budget"))
    log.append(event("run-outcome", run_id="r1", step=None, result="succeeded"))
    code, data, stderr = verify(config)
    assert code == 0 and data["ok"] is True
    assert unknown(data) == []
    assert "outcome unknown" not in stderr


def test_aborted_run_has_no_stale_warning(setup):
    config, log = setup
    crashed_in_step(log, "r1")
    # `runbook abort`: a new run intent, each step in place undone in reverse, the outcome.
    log.append(event("run-intent", run_id="r1", step=None, result="abort"))
    log.append(event("compensate-intent", run_id="r1", step="pause"))
    log.append(event("compensate-outcome", run_id="r1", step="pause"))
    log.append(event("compensate-intent", run_id="r1", step="block"))
    log.append(event("compensate-outcome", run_id="r1", step="block"))
    log.append(event("run-outcome", run_id="r1", step=None, result="aborted"))
    code, data, stderr = verify(config)
    assert code == 0 and data["ok"] is True
    assert unknown(data) == []
    assert "outcome unknown" not in stderr


def test_a_genuinely_open_intent_still_warns(setup):
    config, log = setup
    crashed_in_step(log, "r1")
    log.append(event("run-intent", run_id="r1", step=None, result="resume"))
    log.append(event("step-intent", run_id="r1", step="pause"))
    log.append(event("step-outcome", run_id="r1", step="pause"))
    log.append(event("run-outcome", run_id="r1", step=None, result="succeeded"))
    crashed_in_step(log, "r2")  # never resumed
    log.append(event("compensate-intent", run_id="r3", step="block"))  # an undo that died
    code, data, stderr = verify(config)
    assert code == 0 and data["ok"] is True
    assert unknown(data) == [
        ("r2", "", "run-intent"),
        ("r2", "pause", "step-intent"),
        ("r3", "block", "compensate-intent"),
    ]
    assert "outcome unknown: run r2 step pause" in stderr
    assert "run r1" not in stderr


def test_an_outcome_of_another_family_or_step_answers_nothing(setup):
    config, log = setup
    log.append(event("step-intent", run_id="r1", step="a"))
    log.append(event("step-outcome", run_id="r1", step="b"))
    log.append(event("compensate-outcome", run_id="r2", step="a"))
    log.append(event("run-outcome", run_id="r1", step=None))
    _, data, _ = verify(config)
    assert unknown(data) == [("r1", "a", "step-intent")]


# The same, end to end: a real runbook killed with SIGKILL mid-step, then resumed or aborted
# through the CLI, then `audit verify` as an operator runs it.


@pytest.fixture
def console(tmp_path: Path, redis_url: str) -> AuditConsole:
    return make_console(tmp_path / "console", redis_url)


def test_killed_then_resumed_run_verifies_without_warning(console: AuditConsole):
    run_id = killed_mid_run(console, "k9-resume")
    code, data = console.verify_json()
    assert code == 0
    assert ("pause", "step-intent") in {(s, k) for r, s, k in unknown(data) if r == run_id}, (
        "the crash itself must show as outcome unknown"
    )
    resumed = console.cli("runbook", "resume", run_id, "--yes")
    assert resumed.returncode == 0, resumed.stderr
    code, data = console.verify_json()
    assert code == 0 and data["ok"] is True
    assert unknown(data) == []
    plain = console.cli("audit", "verify")
    assert plain.returncode == 0 and "outcome unknown" not in plain.stderr


def test_killed_then_aborted_run_verifies_without_warning(console: AuditConsole):
    run_id = killed_mid_run(console, "k9-abort")
    aborted = console.cli("runbook", "abort", run_id, "--yes")
    assert aborted.returncode == 0, aborted.stderr
    code, data = console.verify_json()
    assert code == 0 and data["ok"] is True
    assert unknown(data) == []
