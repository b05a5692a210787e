"""The lab writes only to services its own launcher started: a port-forward on loopback (to
what could be production) passes the loopback check but is refused, before a single
connection; and what an attack leaves on disk is private (0700 folders, 0600 files)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from attacks_support import AttackLab, Forwarder, metric_values
from support import LabHandle
from typer.testing import CliRunner

from console.cli.main import app
from console.errors import LabError
from console.lab.attacks.state import list_attacks
from console.lab.guard import require_lab_service
from console.lab.seed import SeededModel, describe_model
from console.lab.specs import service_port


def cli(args: list[str], env: dict[str, str]) -> Any:
    return CliRunner().invoke(app, args, env=env)


def refused_as_not_ours(result: Any, service: str) -> str:
    """The one error line (after the line saying what was about to run)."""
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert len(errors) == 1 and errors[0].startswith(f"error: {service} at "), result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    assert "the lab did not start" in errors[0] and "port-forward" in errors[0], errors[0]
    return str(errors[0])


def test_poisoning_through_a_port_forward_is_refused_and_the_registry_untouched(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    """The session lab's real MLflow behind a forwarder: loopback, answering like MLflow,
    but not started by the launcher."""
    port = service_port("mlflow", lab.settings.mlflow.url)
    with Forwarder(port) as forward:
        env = {
            **lab.env,
            "CONSOLE_RUN_DIR": str(tmp_path / "run"),
            "CONSOLE_MLFLOW__URL": forward.url,
        }
        args = [
            "lab",
            "attack",
            "poisoning",
            "--client",
            "mallory-fwd",
            "--model",
            seeded_model.name,
        ]
        refused_as_not_ours(cli(args, env), "mlflow")
        assert forward.connections == 0
    after = describe_model(lab.settings.mlflow.url, seeded_model.name)
    assert after is not None and len(after.versions) == len(seeded_model.versions)
    assert (after.champion, after.previous) == (seeded_model.champion, seeded_model.previous)


def test_attacks_and_traffic_through_a_port_forward_are_refused(attack_lab: AttackLab) -> None:
    port = service_port("gateway", attack_lab.url)
    with Forwarder(port) as forward:
        env = {**attack_lab.env, "CONSOLE_GATEWAY__URL": forward.url}
        for args in (
            [
                "lab",
                "attack",
                "flood",
                "--client",
                "mallory-fwd",
                "--budget",
                "20",
                "--model",
                attack_lab.model,
            ],
            [
                "lab",
                "attack",
                "extraction",
                "--client",
                "mallory-fwd",
                "--budget",
                "20",
                "--model",
                attack_lab.model,
            ],
            ["lab", "traffic", "--clients", "1", "--duration", "1", "--model", attack_lab.model],
        ):
            refused_as_not_ours(cli(args, env), "gateway")
        assert forward.connections == 0
    # `lab status` says why the attacks did not run.
    records = [a for a in list_attacks(attack_lab.settings) if a.client == "mallory-fwd"]
    assert {a.kind for a in records} == {"flood", "extraction"}
    assert all(a.state == "failed" and "did not start" in (a.error or "") for a in records)
    assert "mallory-fwd" not in metric_values(
        attack_lab.url, "aml_requests_total", attack_lab.model
    )


def test_the_launchers_own_services_are_recognised(attack_lab: AttackLab, lab: LabHandle) -> None:
    """This worker's gateway (its own run dir) and the session lab's MLflow (another run dir,
    a uvicorn child of `mlflow server` listening) are both services a launcher started."""
    gateway = require_lab_service("gateway", attack_lab.url)
    assert gateway.home == (attack_lab.settings.lab_dir / "gateway").resolve()
    mlflow = require_lab_service("mlflow", lab.settings.mlflow.url)
    assert mlflow.home == (lab.settings.lab_dir / "mlflow").resolve()
    assert mlflow.record.port == service_port("mlflow", lab.settings.mlflow.url)


def test_a_stranger_and_a_closed_port_are_named(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with pytest.raises(LabError, match=rf"the lab did not start \(pid {os.getpid()}, "):
            require_lab_service("gateway", f"http://127.0.0.1:{port}")
    with pytest.raises(LabError, match="nothing listens on port"):
        require_lab_service("gateway", f"http://127.0.0.1:{port}")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_attack_records_and_the_gateways_files_are_private(attack_lab: AttackLab) -> None:
    """Whatever the umask (0 here): attack records 0600 in a 0700 folder; the gateway's pid
    file, log and settings (which carry the Redis URL and so its password) 0600."""
    with umask(0):
        result = cli(
            [
                "lab",
                "attack",
                "flood",
                "--client",
                "mallory-modes",
                "--budget",
                "5",
                "--concurrency",
                "1",
                "--model",
                attack_lab.model,
                "-o",
                "json",
            ],
            attack_lab.env,
        )
    assert result.exit_code == 0, result.stderr
    attacks = attack_lab.settings.lab_dir / "attacks"
    assert mode(attacks) == 0o700 and mode(attack_lab.settings.lab_dir) == 0o700
    mine = [
        p for p in attacks.glob("*.json") if json.loads(p.read_text())["client"] == "mallory-modes"
    ]
    assert mine and all(mode(p) == 0o600 for p in mine)
    home = attack_lab.settings.lab_dir / "gateway"
    assert mode(home) == 0o700
    for name in ("gateway.pid", "gateway.log", "gateway-settings.json"):
        assert mode(home / name) == 0o600, name
