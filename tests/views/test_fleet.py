"""The Fleet view's snapshot on the session lab's real services: the champion's recorded
robustness in the real MLflow registry judged against the gate, the trend of the adversarial
success across the evaluation runs (counted for artifacts with a trusted record), incidents and
drills of the last 30 days from their files, blocks and budgets in the real Redis policy store,
the traffic counters from the real Prometheus; each source down fails its own panel only."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from fleet_support import (
    EARLIER,
    LATER,
    evaluations,
    failing_path,
    fleet_env,
    forge_run,
    log_run_metric,
    open_incidents,
    put_record,
    put_tags,
    record,
    settings_of,
    write_drills,
)
from support import LabHandle, free_port

from console.adapters.backends import Backends
from console.config import Settings
from console.evaluation import recording
from console.lab.seed import SeededModel
from console.views import fleet_trend
from console.views.fleet import FleetSnapshot, fetch_fleet


def _fleet(settings: Settings, mitigate: bool = True) -> FleetSnapshot:
    """The snapshot, after a block and a budget are written (``mitigate``)."""

    async def read() -> FleetSnapshot:
        backends = Backends(settings)
        try:
            if mitigate:
                await backends.policy.block("mallory", timedelta(minutes=5), "probe", "t", "r-1")
                await backends.policy.set_budget("eve", 30, "t", "r-2")
            return await fetch_fleet(backends)
        finally:
            await backends.aclose()

    return asyncio.run(read())


def test_the_fleet_reads_every_source(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    settings = settings_of(fleet_env(lab_prometheus, tmp_path, seeded_model.name))
    put_record(settings, seeded_model, record(seeded_model, "1", fgsm=0.55, at=EARLIER))
    put_record(settings, seeded_model, record(seeded_model, "2", fgsm=0.31, at=LATER))
    open_incidents(settings, seeded_model.name)
    write_drills(settings, seeded_model.name)

    fleet = _fleet(settings)
    assert fleet.errors == {}
    (served,) = fleet.models
    assert served.model == seeded_model.name and served.registered is True
    assert served.champion == seeded_model.champion == "2"
    assert served.robustness is not None and served.robustness.passes is True
    assert served.robustness.quote() == (
        "clean 0.95, adversarial success 0.31, detector FPR 0.03, passes the gate"
    )
    assert [p.version for p in served.trend] == ["1", "2"]  # by evaluated_at
    assert served.trend_rates == [0.55, 0.31]
    assert fleet.incidents_of(seeded_model.name) == {"critical": 1, "warning": 1, "info": 0}
    assert fleet.open_incidents[seeded_model.name] == 3  # the old one is still open
    assert fleet.incidents["another-model"] == {"critical": 1}
    drills = fleet.drills[seeded_model.name]
    assert (drills.runs, drills.contained, drills.not_contained) == (2, 1, 1)
    assert "1 unreadable drill report(s)" in fleet.warnings
    assert fleet.in_force is not None
    assert (fleet.in_force.blocks, fleet.in_force.budgets) == (1, 1)
    # Prometheus answered: the session lab runs no gateway, so no traffic to price.
    cost = fleet.cost[seeded_model.name]
    assert cost.refused is None and cost.unwanted_seconds is None


def test_a_champion_missing_the_gate_and_a_record_of_another_artifact(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    settings = settings_of(fleet_env(lab_prometheus, tmp_path, seeded_model.name))
    put_record(settings, seeded_model, record(seeded_model, "2", clean=0.8, fgsm=0.7))
    fleet = _fleet(settings)
    judged = fleet.models[0].robustness
    assert judged is not None and judged.passes is False
    assert [m.figure for m in judged.misses] == ["clean_accuracy", "max_adversarial_success"]
    assert judged.verdict.startswith(
        "misses the gate (clean_accuracy 0.800 is below the gate's 0.900 and 1 more)"
    )
    # Version 1's figures copied onto version 2 (sha256 of 1): no evaluation of 2.
    put_record(
        settings,
        seeded_model,
        record(seeded_model, "2", sha256=seeded_model.sha256["1"]),
    )
    judged = _fleet(settings, mitigate=False).models[0].robustness
    assert judged is not None and judged.passes is None
    assert judged.quote().startswith("measured another artifact")


def test_each_source_down_fails_its_own_panel(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    env = fleet_env(lab_prometheus, tmp_path, seeded_model.name)
    settings = settings_of(env)
    open_incidents(settings, seeded_model.name)
    write_drills(settings, seeded_model.name)
    down = settings_of(
        {
            **env,
            "CONSOLE_MLFLOW__URL": f"http://127.0.0.1:{free_port()}",
            "CONSOLE_PROMETHEUS__URL": f"http://127.0.0.1:{free_port()}",
            "CONSOLE_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
        }
    )
    fleet = _fleet(down, mitigate=False)
    assert set(fleet.errors) == {"registry", "evaluations", "mitigations", "cost"}
    assert fleet.models[0].registered is None and fleet.models[0].robustness is None
    assert fleet.in_force is None and fleet.cost == {}
    # The files were read all the same.
    assert fleet.incidents_of(seeded_model.name)["critical"] == 1
    assert fleet.drills[seeded_model.name].runs == 2


def test_records_are_trusted_as_the_gate_trusts_them(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    """With a signing key in force, an unsigned record (anyone who can write tags could write
    one) is no evaluation in the Fleet and Models views; a record signed by the key is one."""
    from console.model_signing import generate_key_pair

    private = tmp_path / "keys" / "signing.key"
    public = generate_key_pair(private)
    env = fleet_env(lab_prometheus, tmp_path, seeded_model.name)
    keys = json.dumps([str(public)])
    settings = settings_of({**env, "CONSOLE_MODELS__SIGNING_PUBLIC_KEYS": keys})
    put_tags(settings, seeded_model, "2", record(seeded_model, "2").to_tags())
    judged = _fleet(settings, mitigate=False).models[0].robustness
    assert judged is not None and judged.passes is None
    assert judged.quote() == "record not trusted: unsigned"

    signed = record(seeded_model, "2").signed_tags(private.read_bytes())
    put_tags(settings, seeded_model, "2", signed)
    judged = _fleet(settings, mitigate=False).models[0].robustness
    assert judged is not None and judged.passes is True

    # Signed by another key (the session lab's): not trusted either.
    lab_key = settings_of(env).models.signing_key
    assert lab_key is not None
    put_tags(
        settings, seeded_model, "2", record(seeded_model, "2").signed_tags(lab_key.read_bytes())
    )
    judged = _fleet(settings, mitigate=False).models[0].robustness
    assert judged is not None
    assert judged.quote() == "record not trusted: its signature does not verify"


def test_the_trend_is_the_history_of_evaluation_runs_of_trusted_artifacts(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    """Four evaluations recorded as eval records them: each is a point, oldest first. The run
    each version's signed record names shows the record's figure even when its run metric is
    rewritten; a run of another artifact is left out, and so are a run at another strength and
    the runs of a version whose record is no longer trusted."""
    settings = settings_of(fleet_env(lab_prometheus, tmp_path, seeded_model.name))
    written = evaluations(settings, seeded_model, [("1", 0.7), ("1", 0.6), ("2", 0.5), ("2", 0.3)])
    forge_run(settings, seeded_model.name, "2", seeded_model.sha256["1"], 0.01)
    # Of the trusted artifact, but at another strength than the gate's: not comparable.
    forge_run(settings, seeded_model.name, "2", seeded_model.sha256["2"], 0.99, epsilon="4")
    log_run_metric(settings, written[-1].run_id, "max_adversarial_success", 0.0)

    history = _fleet(settings, mitigate=False).models[0].history
    assert fleet_trend.EXPERIMENT == recording.EXPERIMENT  # where eval records, the view reads
    assert history.from_runs
    assert [(p.version, p.max_adversarial_success, p.source) for p in history.points] == [
        ("1", 0.7, "run"),
        ("1", 0.6, "record"),
        ("2", 0.5, "run"),
        ("2", 0.3, "record"),  # the signed 0.3, not the run's rewritten 0.0
    ]
    assert [p.run_id for p in history.points] == [r.run_id for r in written]
    assert (history.unsigned, history.left_out, history.other_strength) == (2, 1, 1)
    assert history.describe() == (
        "4 evaluation(s) (2 signed record(s), 2 run metric(s) of trusted artifacts); "
        "1 run(s) left out (no trusted record of their artifact); 1 left out (measured at "
        "another epsilon than the gate's 1, or not recorded)"
    )

    # Version 1's record unsigned now (a registry writer's): its runs are no evaluation.
    put_tags(settings, seeded_model, "1", record(seeded_model, "1", fgsm=0.1).to_tags())
    history = _fleet(settings, mitigate=False).models[0].history
    assert [(p.version, p.max_adversarial_success) for p in history.points] == [
        ("2", 0.5),
        ("2", 0.3),
    ]
    assert (history.left_out, history.other_strength) == (3, 1)


def test_runs_that_cannot_be_read_fail_their_own_panel_and_the_records_stay(
    lab_prometheus: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    env = fleet_env(lab_prometheus, tmp_path, seeded_model.name)
    settings = settings_of(env)
    evaluations(settings, seeded_model, [("1", 0.7), ("1", 0.6), ("2", 0.5)])
    with failing_path(settings.mlflow.url, "/runs/search") as proxy:
        fleet = _fleet(settings_of({**env, "CONSOLE_MLFLOW__URL": proxy}), mitigate=False)
    assert set(fleet.errors) == {"evaluations"}
    assert "503" in fleet.errors["evaluations"] or "down" in fleet.errors["evaluations"]
    (served,) = fleet.models
    assert served.champion == "2" and served.robustness is not None
    assert served.robustness.passes is True  # the registry was read through the proxy
    history = served.history
    assert not history.from_runs
    assert [(p.version, p.source) for p in history.points] == [("1", "record"), ("2", "record")]
    assert served.trend_rates == [0.6, 0.5]
    assert history.describe() == "each version's last record (evaluation runs not read)"
