"""``lab attack`` and ``lab traffic`` through the CLI (in-process: a subprocess would spend
seconds importing scikit-learn again), and the attacks ``lab status`` lists."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from attacks_support import AttackLab
from support import REPO
from typer.testing import CliRunner

from console.cli.main import app


def cli(lab: AttackLab, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    # Under `-o log_cli=true`, a log record emitted inside CliRunner makes pytest swap
    # sys.stdout under the runner (its output stream ends up closed): keep httpx quiet.
    httpx_log = logging.getLogger("httpx")
    level = httpx_log.level
    httpx_log.setLevel(logging.WARNING)
    try:
        result = CliRunner().invoke(app, list(args), env=env or lab.env)
    finally:
        httpx_log.setLevel(level)
    return result.exit_code, result.stdout, result.stderr


def test_attack_cli_reports_json_and_status_lists_it(attack_lab: AttackLab) -> None:
    code, out, err = cli(
        attack_lab,
        *("lab", "attack", "flood", "--client", "mallory-cli", "--budget", "40"),
        *("--concurrency", "4", "--model", attack_lab.model, "-o", "json"),
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["requests"] == 40 and report["outcomes"]["ok"] == 40

    code, out, err = cli(attack_lab, "lab", "status", "-s", "gateway", "--attacks", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["services"][0]["name"] == "gateway" and data["services"][0]["state"] == "running"
    [mine] = [a for a in data["attacks"] if a["client"] == "mallory-cli"]
    assert mine["kind"] == "flood" and mine["state"] == "finished"
    assert mine["model"] == attack_lab.model and isinstance(mine["pid"], int)
    record = attack_lab.settings.lab_dir / "attacks" / f"{mine['id']}.json"
    assert json.loads(record.read_text())["report"]["requests"] == 40

    _, table, _ = cli(attack_lab, "lab", "status", "-s", "gateway")
    assert "lab attacks" in table and "mallory-cli" in table
    _, plain, _ = cli(attack_lab, "lab", "status", "-s", "gateway", "-o", "json")
    assert isinstance(json.loads(plain), list)  # the default JSON shape is unchanged


def test_a_failed_attack_is_recorded_as_failed(attack_lab: AttackLab) -> None:
    code, _, err = cli(
        attack_lab,
        *("lab", "attack", "flood", "--client", "mallory-nomodel", "--budget", "5"),
        *("--model", "no-such-model"),
    )
    assert code == 1 and "does not serve model 'no-such-model'" in err
    _, out, _ = cli(attack_lab, "lab", "status", "-s", "gateway", "--attacks", "-o", "json")
    [mine] = [a for a in json.loads(out)["attacks"] if a["client"] == "mallory-nomodel"]
    assert mine["state"] == "failed" and "no-such-model" in mine["error"]


def test_traffic_cli_prints_a_summary(attack_lab: AttackLab) -> None:
    code, out, err = cli(
        attack_lab,
        *("lab", "traffic", "--clients", "2", "--rate", "5", "--duration", "2"),
        *("--model", attack_lab.model),
    )
    assert code == 0, err
    assert "alice" in out and "bob" in out and "stopped: duration" in out


def test_cli_refuses_a_non_loopback_gateway(attack_lab: AttackLab) -> None:
    env = {**attack_lab.env, "CONSOLE_GATEWAY__URL": "http://10.0.0.1:8080"}
    for args in (
        ["lab", "attack", "extraction", "--client", "mallory-1", "--budget", "5"],
        ["lab", "traffic", "--duration", "1"],
    ):
        code, _, err = cli(attack_lab, *args, env=env)
        assert code == 1
        assert "not loopback" in err and "10.0.0.1" in err


async def test_state_file_reads_running_then_finished_and_dead_if_its_process_is_gone(
    attack_lab: AttackLab,
) -> None:
    from console.lab.attacks import state

    settings = attack_lab.settings
    async with state.tracked(settings, "flood", "mallory-state", attack_lab.model) as record:
        [live] = [a for a in state.list_attacks(settings) if a.id == record.id]
        assert live.state == "running" and live.ended is None
        record.report = {"requests": 1}
    [done] = [a for a in state.list_attacks(settings) if a.id == record.id]
    assert done.state == "finished" and done.report == {"requests": 1} and done.ended

    crashed = record.model_copy(
        update={"id": record.id + "-crashed", "state": "running", "pid_start_ticks": -1}
    )
    path = state.attacks_dir(settings) / f"{crashed.id}.json"
    path.write_text(crashed.model_dump_json())
    [dead] = [a for a in state.list_attacks(settings) if a.id == crashed.id]
    assert dead.state == "dead"


def test_lab_down_stops_running_attacks(attack_lab: AttackLab, tmp_path: Path) -> None:
    """An attacker must not outlive the lab: `lab down` (no --services) stops it and records
    why. Its own run dir, so only this attack and no service of the shared lab is touched."""
    import subprocess
    import sys
    import time

    from console.config import load_settings
    from console.lab.attacks import state

    env = {**attack_lab.env, "CONSOLE_RUN_DIR": str(tmp_path / "run")}
    attacker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console",
            "lab",
            "attack",
            "extraction",
            "--client",
            "mallory-down",
            "--model",
            attack_lab.model,
            "--start-after",
            "300",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            settings = load_settings()
        deadline = time.monotonic() + 30
        while not [a for a in state.list_attacks(settings) if a.state == "running"]:
            assert time.monotonic() < deadline, "the attack never recorded itself"
            assert attacker.poll() is None
            time.sleep(0.2)
        code, _, err = cli(attack_lab, "lab", "down", env=env)
        assert code == 0, err
        assert "stopped attack" in err
        assert attacker.wait(timeout=10) != 0
        [record] = state.list_attacks(settings)
        assert record.state == "failed" and "lab down" in (record.error or "")
    finally:
        if attacker.poll() is None:
            attacker.kill()
