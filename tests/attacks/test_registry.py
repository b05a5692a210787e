"""The attack registry is the one list of attacks: the CLI's ``lab attack`` commands and the
drill scenarios' kinds are exactly its kinds, and the one tracked runner refuses an unknown
kind, an unknown argument or a target that is not loopback before anything is recorded.
No lab needed: every refusal happens before a socket exists."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import typer

from console.cli.lab_attacks import attack_app
from console.config import Settings
from console.drills.attacks import attack_kinds, run_attack
from console.drills.scenario import Scenario
from console.errors import ConsoleError, LabError
from console.lab.attacks.launch import prepare_attack
from console.lab.attacks.registry import ATTACKS, KINDS, attack_for
from console.lab.attacks.state import attacks_dir


def _settings(tmp_path: Path, gateway: str = "http://127.0.0.1:9") -> Settings:
    base = Settings(run_dir=tmp_path / "run")
    return base.model_copy(update={"gateway": base.gateway.model_copy(update={"url": gateway})})


def test_the_cli_commands_and_scenario_kinds_are_the_registry() -> None:
    commands = typer.main.get_command(attack_app)
    assert isinstance(commands, typer.core.TyperGroup)
    assert sorted(commands.commands) == sorted(KINDS)
    assert attack_kinds() == KINDS == tuple(ATTACKS)
    assert set(KINDS) == {"extraction", "evasion", "flood", "poisoning"}
    for kind in KINDS:
        scenario = {
            "name": "x",
            "attack": {"kind": kind, "client": "m"},
            "detect": {"alertname": "A"},
        }
        assert Scenario.model_validate(scenario).attack.kind == kind


@pytest.mark.parametrize("kind", KINDS)
def test_every_entry_loads_a_run_function_taking_settings_client_and_model(kind: str) -> None:
    attack = attack_for(kind)
    function = attack.load()
    assert inspect.iscoroutinefunction(function)
    assert list(inspect.signature(function).parameters)[:3] == ["settings", "client", "model"]
    assert attack.arguments() >= {"seed"}


def test_an_unknown_kind_is_an_error_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(LabError) as caught:
        attack_for("nonsense")
    assert str(caught.value) == (
        "unknown attack kind 'nonsense'; known: extraction, evasion, flood, poisoning"
    )
    settings = _settings(tmp_path)
    with pytest.raises(LabError, match="unknown attack kind 'nonsense'"):
        prepare_attack(settings, "nonsense", "mallory-x")
    assert not attacks_dir(settings).exists()  # refused before it was recorded


async def test_the_drills_runner_refuses_an_unknown_kind_as_a_console_error(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(ConsoleError, match="unknown attack kind 'teleport'; known: extraction"):
        await run_attack(settings, "teleport", "mallory-x", "digits", {})
    assert not attacks_dir(settings).exists()


def test_unknown_arguments_and_non_loopback_targets_are_refused_before_recording(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(LabError, match=r"unknown flood argument\(s\) \['speed'\]; known: "):
        prepare_attack(settings, "flood", "mallory-x", args={"speed": 9})
    far = _settings(tmp_path, gateway="http://10.0.0.1:8080")
    with pytest.raises(LabError, match="not loopback"):
        prepare_attack(far, "flood", "mallory-x")
    assert not attacks_dir(settings).exists()


def test_a_prepared_attack_names_its_model_and_target(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    flood = prepare_attack(settings, "flood", "mallory-x", args={"budget": 5})
    assert flood.model == settings.models.served[0] and flood.target == settings.gateway.url
    poisoning = prepare_attack(settings, "poisoning", "mallory-x", "other")
    assert poisoning.model == "other" and poisoning.target == settings.mlflow.url
