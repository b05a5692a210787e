"""The launcher against real services in an isolated lab: up, idempotence, down, dead, errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import REPO, LabHandle
from typer.testing import CliRunner

from console.adapters import processes
from console.cli.main import app
from console.errors import LabError
from console.lab import services, specs

runner = CliRunner()


def cli(handle: LabHandle, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--config", str(handle.config_path), "lab", *args])
    return result.exit_code, result.stdout, result.stderr


def states(handle: LabHandle) -> dict[str, dict[str, object]]:
    code, out, err = cli(handle, "status", "--output", "json")
    assert code == 0, err
    return {row["name"]: row for row in json.loads(out)}


def gone(pgid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not processes.group_members(pgid):
            return True
        time.sleep(0.05)
    return False


def test_up_status_idempotent_down(iso_lab: LabHandle) -> None:
    code, out, err = cli(iso_lab, "up", "--services", "redis,alertmanager,prometheus", "-o", "json")
    assert code == 0, err
    started = {row["name"]: row for row in json.loads(out)["services"]}
    assert set(started) == {"redis", "alertmanager", "prometheus"}
    assert json.loads(out)["seeded"] is None  # MLflow was not asked for
    for name, row in started.items():
        assert row["state"] == "running", row
        assert row["port"] == specs.service_port(name, str(row["url"]))
        assert isinstance(row["pid"], int) and Path(f"/proc/{row['pid']}").exists()

    now = states(iso_lab)
    assert {n: r["pid"] for n, r in now.items() if n in started} == {
        n: r["pid"] for n, r in started.items()
    }
    assert now["mlflow"] == {**now["mlflow"], "state": "stopped", "pid": None}

    code, out, err = cli(iso_lab, "up", "-o", "json")  # lab.services: the same three
    assert code == 0, err
    again = {row["name"]: row["pid"] for row in json.loads(out)["services"]}
    assert again == {n: r["pid"] for n, r in started.items()}, "up restarted a live service"

    redis_pid = started["redis"]["pid"]
    code, out, err = cli(iso_lab, "down", "--services", "redis")
    assert code == 0, err
    assert gone(redis_pid), "redis' process group survived down"
    assert not (iso_lab.settings.lab_dir / "redis" / "redis.pid").exists()
    after = states(iso_lab)
    assert after["redis"]["state"] == "stopped" and after["redis"]["pid"] is None
    assert after["alertmanager"]["state"] == "running"
    assert after["prometheus"]["state"] == "running"


def test_status_table_and_down_all(iso_lab: LabHandle) -> None:
    services.up(iso_lab.settings, ["redis", "alertmanager"])
    code, out, _ = cli(iso_lab, "status")
    assert code == 0
    assert "redis" in out and "running" in out and "stopped" in out
    pids = [s.pid for s in services.status(iso_lab.settings) if s.pid]
    assert len(pids) == 2
    code, _, err = cli(iso_lab, "down")
    assert code == 0, err
    assert all(gone(pid) for pid in pids)
    assert {s.state for s in services.status(iso_lab.settings)} == {"stopped"}


def test_killed_service_is_dead_then_restarted(iso_lab: LabHandle) -> None:
    first = services.up(iso_lab.settings, ["redis"]).services[0]
    assert first.pid is not None
    os.killpg(first.pid, signal.SIGKILL)
    assert gone(first.pid)
    assert states(iso_lab)["redis"]["state"] == "dead"
    second = services.up(iso_lab.settings, ["redis"]).services[0]
    assert second.state == "running" and second.pid not in (None, first.pid)


def test_concurrent_up_from_two_processes(iso_lab: LabHandle) -> None:
    cmd = [sys.executable, "-m", "console", "lab", "up", "-s", "redis,alertmanager", "-o", "json"]
    procs = [
        subprocess.Popen(
            cmd,
            env=iso_lab.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=90) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    pids = [{r["name"]: r["pid"] for r in json.loads(out)["services"]} for out, _ in outs]
    assert pids[0] == pids[1]
    assert all(r["state"] == "running" for r in json.loads(outs[0][0])["services"])


def test_missing_binary_names_the_install_command(
    iso_lab: LabHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(specs.BINARIES, "redis", "redis-server-not-installed")
    monkeypatch.setitem(specs.BINARIES, "prometheus", "prometheus-not-installed")
    code, out, err = cli(iso_lab, "up", "--services", "redis,alertmanager,prometheus")
    assert code == 1
    assert (
        "redis-server-not-installed not found: install it with "
        "`apt-get install -y --no-install-recommends redis-server`" in err
    )
    assert (
        "prometheus-not-installed not found: install it with "
        "`apt-get install -y --no-install-recommends prometheus`" in err
    )
    assert "Traceback" not in err + out and len(err.strip().splitlines()) == 1
    # Checked before anything starts: alertmanager was not started either.
    assert states(iso_lab)["alertmanager"]["state"] == "stopped"


def test_missing_mlflow_names_the_install_command(
    iso_lab: LabHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(specs, "MLFLOW_MODULE", "mlflow_not_installed")
    hint = r"mlflow_not_installed not installed: pip install -e '\.\[lab\]'"
    with pytest.raises(LabError, match=hint):
        services.up(iso_lab.settings, ["mlflow"])


def test_refuses_a_non_loopback_service(iso_lab: LabHandle) -> None:
    remote = iso_lab.settings.model_copy(
        update={
            "redis": iso_lab.settings.redis.model_copy(update={"url": "redis://10.1.2.3:6379/0"})
        }
    )
    with pytest.raises(LabError, match="only runs on loopback"):
        services.up(remote, ["redis"])


def test_port_held_by_a_stranger_is_reported(iso_lab: LabHandle) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        taken = iso_lab.settings.model_copy(
            update={
                "alertmanager": iso_lab.settings.alertmanager.model_copy(
                    update={"url": f"http://127.0.0.1:{port}"}
                )
            }
        )
        with pytest.raises(LabError, match=f"port {port} is in use by a process this lab did not"):
            services.up(taken, ["alertmanager"])


def test_a_service_that_dies_reports_its_log(
    iso_lab: LabHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "fake-redis"
    fake.write_text("#!/bin/sh\necho 'FATAL: cannot open the thing' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setitem(specs.BINARIES, "redis", str(fake))
    with pytest.raises(LabError) as info:
        services.up(iso_lab.settings, ["redis"])
    assert "redis exited with status 3" in str(info.value)
    assert "FATAL: cannot open the thing" in str(info.value)
    assert not (iso_lab.settings.lab_dir / "redis" / "redis.pid").exists()


def test_audit_key_is_created_once_with_mode_0600(iso_lab: LabHandle) -> None:
    key_file = iso_lab.settings.audit.hmac_key_file
    assert key_file is not None and not key_file.exists()
    services.up(iso_lab.settings, ["redis"])
    key = key_file.read_text()
    assert len(key) == 64 and int(key, 16) >= 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    services.up(iso_lab.settings, ["redis"])
    assert key_file.read_text() == key
    assert iso_lab.settings.audit_key() == key.encode()


def test_prometheus_loads_rule_files_and_knows_alertmanager(
    iso_lab: LabHandle, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "lab.yml").write_text(
        "groups:\n  - name: aml-test\n    rules:\n      - record: aml:test_up\n        expr: up\n"
    )
    services.up(iso_lab.settings, ["alertmanager", "prometheus"], rules_dir=rules)
    base = iso_lab.settings.prometheus.url
    groups = httpx.get(f"{base}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert [g["name"] for g in groups] == ["aml-test"]
    am_port = specs.service_port("alertmanager", iso_lab.settings.alertmanager.url)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        active = httpx.get(f"{base}/api/v1/alertmanagers", timeout=5).json()["data"]
        if any(f":{am_port}/" in a["url"] for a in active["activeAlertmanagers"]):
            break
        time.sleep(0.2)
    else:
        pytest.fail("prometheus never discovered the lab's alertmanager")


def test_unknown_service_is_one_line(iso_lab: LabHandle) -> None:
    code, out, err = cli(iso_lab, "status", "--services", "redis,postgres")
    assert code == 1
    known = ", ".join(specs.SERVICE_NAMES)
    assert err.strip() == f"error: unknown service postgres (known: {known})"
    assert known.startswith("redis, mlflow, alertmanager, prometheus, victoria-metrics, vmalert")
