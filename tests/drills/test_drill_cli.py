"""Drill scenarios and the drill CLI: the shipped scenarios validate, a broken one is named
line by line, and a drill that cannot run says why in one line (never a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import REPO, free_port, run_cli

SHIPPED = sorted(p.stem for p in (REPO / "configs" / "drills").glob("*.yaml"))


def test_shipped_scenarios_are_listed_and_valid() -> None:
    result = run_cli(["drill", "list", "--output", "json"])
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert sorted(r["name"] for r in rows) == SHIPPED
    assert {"extraction", "evasion", "flood", "poisoning"} <= set(SHIPPED)
    assert all(r["valid"] for r in rows), rows
    extraction = next(r for r in rows if r["name"] == "extraction")
    assert extraction["alert"] == "AMLExtractionSuspected"
    assert extraction["responses"] == ["contain-extraction"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\nattack: {kind: extraction, client: m}\ndetect: {alertname: A}\n"
            "respond:\n  - on: A\n    runbook: block-client\n",
            "respond.0.alert",
        ),
        (
            "name: x\nattack: {kind: extraction, client: m, args: {rate: 5, speed: 9}}\n"
            "detect: {alertname: A}\n",
            "unknown extraction argument(s) ['speed']",
        ),
        ("name: x\nattack: {kind: teleport, client: m}\ndetect: {alertname: A}\n", "attack.kind"),
        (
            "name: x\nattack: {kind: flood, client: m}\ndetect: {alertname: A}\ntimeout: 5 years\n",
            "is not a duration",
        ),
        (
            "name: x\nattack: {kind: flood, client: 'a;rm -rf /'}\ndetect: {alertname: A}\n",
            "attack.client",
        ),
        ("name: x\nattack: !!python/object/apply:os.system ['true']\n", "invalid YAML"),
        ("name: [unclosed\n", "invalid YAML"),
    ],
)
def test_a_broken_scenario_is_named_line_by_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    result = run_cli(["drill", "validate", str(path)])
    assert result.returncode == 1
    assert f"{path}:" in result.stderr and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_scenario_and_a_lab_that_is_down_are_one_line_errors(tmp_path: Path) -> None:
    unknown = run_cli(["drill", "run", "nope", "--responder", "auto"])
    assert unknown.returncode == 1
    assert "no drill scenario named 'nope'" in unknown.stderr
    closed = f"http://127.0.0.1:{free_port()}"
    env = {
        "CONSOLE_RUN_DIR": str(tmp_path / "run"),
        "CONSOLE_GATEWAY__URL": closed,
        "CONSOLE_TRAFFIC__URL": closed,
        "CONSOLE_ALERTMANAGER__URL": closed,
        "CONSOLE_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
        "CONSOLE_REDIS__TIMEOUT_S": "0.5",
        "CONSOLE_AUDIT__HMAC_KEY": "drill-cli-test-key-" + "x" * 16,
    }
    import os

    down = run_cli(["drill", "run", "extraction", "--responder", "auto"], {**os.environ, **env})
    assert down.returncode == 1, down.stdout + down.stderr
    assert "lab gateway does not answer" in down.stderr and "lab up" in down.stderr
    assert "Traceback" not in down.stderr
    read_only = run_cli(
        ["--read-only", "drill", "run", "extraction", "--responder", "auto"], {**os.environ, **env}
    )
    assert read_only.returncode == 1
    assert "read-only mode" in read_only.stderr
    assert not (tmp_path / "run" / "drills").exists()  # nothing ran, no report


def test_an_unknown_attack_kind_is_refused_with_its_line_and_the_known_kinds(
    tmp_path: Path,
) -> None:
    """Kinds come from the lab's attack registry: `nonsense` is refused at validation, not run
    as some other attack."""
    from typer.testing import CliRunner

    from console.cli.main import app
    from console.drills.attacks import attack_kinds

    path = tmp_path / "nonsense.yaml"
    path.write_text(
        "name: x\nattack:\n  client: m\n  kind: nonsense\ndetect: {alertname: A}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["drill", "validate", str(path)])
    assert result.exit_code == 1
    [problem] = result.stderr.strip().splitlines()
    known = ", ".join(attack_kinds())
    assert problem == (
        f"{path}:4: attack.kind: Value error, unknown attack kind 'nonsense'; known: {known}"
    )
    good = tmp_path / "good.yaml"
    good.write_text(path.read_text().replace("nonsense", attack_kinds()[-1]), encoding="utf-8")
    ok = CliRunner().invoke(app, ["drill", "validate", str(good)])
    assert ok.exit_code == 0 and f"ok {good}" in ok.stdout


def test_a_scenario_is_bounded_at_64_kib(tmp_path: Path) -> None:
    from console.drills.scenario import load_scenario
    from console.errors import DrillScenarioError

    path = tmp_path / "big.yaml"
    text = "name: x\nattack: {kind: flood, client: m}\ndetect: {alertname: A}\n"
    path.write_text(text + "#" * (64 * 1024) + "\n", encoding="utf-8")
    with pytest.raises(DrillScenarioError, match=f"larger than {64 * 1024}"):
        load_scenario(path)
    path.write_text(text, encoding="utf-8")
    assert load_scenario(path).scenario.attack.kind == "flood"
