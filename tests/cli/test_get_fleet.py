"""``aml-console get fleet`` and ``get models`` on the session lab: the champion's recorded
robustness from the real registry against the gate, the trend, incidents and drills of the
last 30 days, the mitigations in force; as JSON and as a table; a source down is one warning
line and its fields None, never the command's failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleet_support import (
    EARLIER,
    evaluations,
    failing_path,
    fleet_env,
    forge_run,
    open_incidents,
    put_record,
    record,
    settings_of,
    write_drills,
)
from support import LabHandle, free_port
from typer.testing import CliRunner

from console.cli.get_fleet import FLEET_FIELDS
from console.cli.main import app
from console.lab.seed import SeededModel


def get(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(app, ["get", *args], env=env)


def test_get_fleet_json_and_table(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    env = fleet_env(lab_prometheus, tmp_path, seeded_model.name)
    settings = settings_of(env)
    put_record(settings, seeded_model, record(seeded_model, "1", fgsm=0.55, at=EARLIER))
    put_record(settings, seeded_model, record(seeded_model, "2", clean=0.85, fgsm=0.31))
    open_incidents(settings, seeded_model.name)
    write_drills(settings, seeded_model.name)

    done = get(env, "fleet", "-o", "json")
    assert done.exit_code == 0, (done.stdout, done.stderr)
    (row,) = json.loads(done.stdout)
    assert tuple(row) == FLEET_FIELDS
    assert row["model"] == seeded_model.name and row["champion"] == "2"
    assert row["gate"] == "miss"
    assert row["gate_misses"] == ["clean_accuracy 0.850 is below the gate's 0.900"]
    assert row["clean_accuracy"] == 0.85 and row["max_adversarial_success"] == 0.31
    assert row["adversarial_success_trend"] == ["1:0.5500", "2:0.3100"]
    # No evaluation runs of this model: the points are the records.
    assert (row["trend_source"], row["trend_unsigned"], row["trend_runs_left_out"]) == (
        "runs",
        0,
        0,
    )
    assert (row["incidents_critical"], row["incidents_warning"], row["incidents_info"]) == (1, 1, 0)
    assert (row["drills"], row["drills_not_contained"]) == (2, 1)
    assert (row["blocks"], row["budgets"], row["hardenings"]) == (0, 0, 0)
    assert "1 unreadable drill report(s)" in done.stderr

    table = get(env, "fleet")
    assert table.exit_code == 0, table.stderr
    assert seeded_model.name in table.stdout
    assert "0.55 → 0.31" in table.stdout
    assert "misses the gate" in " ".join(table.stdout.split())
    assert "in force across the fleet: 0 block(s)" in " ".join(table.stdout.split())

    down = {
        **env,
        "CONSOLE_MLFLOW__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_PROMETHEUS__URL": f"http://127.0.0.1:{free_port()}",
    }
    partial = get(down, "fleet", "-o", "json")
    assert partial.exit_code == 0, partial.stderr
    (row,) = json.loads(partial.stdout)
    assert row["champion"] is None and row["registered"] is None and row["refused"] is None
    assert row["incidents_critical"] == 1  # the incident files were read all the same
    lines = partial.stderr.strip().splitlines()
    assert any(line.startswith("warning: registry:") for line in lines)
    assert any(line.startswith("warning: cost:") for line in lines)
    assert "Traceback" not in partial.stdout + partial.stderr


def test_get_models_quotes_the_champions_robustness_and_hostile_tags_stay_inert(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    env = fleet_env(lab_prometheus, tmp_path, seeded_model.name)
    settings = settings_of(env)
    put_record(settings, seeded_model, record(seeded_model, "2"))
    done = get(env, "models", "--model", seeded_model.name, "-o", "json")
    assert done.exit_code == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert row["champion_robustness"] == (
        "clean 0.95, adversarial success 0.42, detector FPR 0.03, passes the gate"
    )
    # A record (signed: the signature does not make its text safe) with markup and an escape.
    hostile = record(seeded_model, "2", sha256="[red]\x1b[2Jfake")
    put_record(settings, seeded_model, hostile)
    table = get(env, "fleet")
    assert table.exit_code == 0, table.stderr
    assert "\x1b" not in table.stdout and "measured another artifact" in table.stdout


def test_get_fleet_charts_every_evaluation_run_and_says_where_the_trend_comes_from(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    env = fleet_env(lab_prometheus, tmp_path, seeded_model.name)
    settings = settings_of(env)
    evaluations(settings, seeded_model, [("1", 0.7), ("2", 0.5), ("2", 0.3)])
    forge_run(settings, seeded_model.name, "2", "0" * 64, 0.01)  # another artifact's

    done = get(env, "fleet", "-o", "json")
    assert done.exit_code == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert row["adversarial_success_trend"] == ["1:0.7000", "2:0.5000", "2:0.3000"]
    assert (row["trend_source"], row["trend_unsigned"], row["trend_runs_left_out"]) == (
        "runs",
        1,
        1,
    )
    assert row["trend_other_strength"] == 0
    table = get(env, "fleet")
    assert table.exit_code == 0, table.stderr
    assert "0.70 → 0.50 → 0.30" in table.stdout
    assert "trend: the last 20 evaluation runs" in " ".join(table.stdout.split())

    with failing_path(settings.mlflow.url, "/runs/search") as proxy:
        partial = get({**env, "CONSOLE_MLFLOW__URL": proxy}, "fleet", "-o", "json")
    assert partial.exit_code == 0, partial.stderr
    (row,) = json.loads(partial.stdout)
    assert row["champion"] == "2" and row["gate"] == "pass"
    assert row["adversarial_success_trend"] == ["1:0.7000", "2:0.3000"]
    assert (row["trend_source"], row["trend_runs_left_out"]) == ("records", None)
    (warning,) = partial.stderr.strip().splitlines()
    assert warning.startswith("warning: evaluations: ")
    assert warning.endswith("(the trend is each version's last record only)")
