"""promote-model from the CLI on the real MLflow: the robustness gate refuses a version with no
recorded evaluation of its artifact, one that misses ``[robustness]``, one worse than the
champion beyond the margin, and a record forged from another version; a version that passes
moves champion and previous, with both versions' figures in the plan; a failed later step
moves both aliases back; and a gate changed in the config between two promotions is written
into the audit log (old -> new, by whom)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from registry_cli_support import aliases, cli, forget
from runbook_support import Console, audit_records
from support import run_cli

from console.adapters.mlflow import MlflowRegistry
from console.config_robustness import RobustnessSection
from console.lab.seed import SeededModel
from console.model_signing import generate_key_pair, private_key_path
from console.robustness import EVASION_ATTACKS, AttackFigures, RobustnessRecord
from console.runbooks.actions.robustness_facts import GATE_FIELDS


def record(
    model: SeededModel,
    version: str,
    *,
    sha: str | None = None,
    clean: float = 0.95,
    fgsm: float = 0.30,
    fpr: float = 0.04,
    epsilon: float | None = None,
) -> RobustnessRecord:
    return RobustnessRecord(
        model=model.name,
        version=version,
        onnx_sha256=sha or model.sha256[version],
        evaluated_at="2026-12-03T12:00:00+00:00",
        clean_accuracy=clean,
        detector_fpr=fpr,
        detector_threshold=0.5,
        epsilon=RobustnessSection().epsilon if epsilon is None else epsilon,  # as the gate asks
        holdout=RobustnessSection().holdout,
        samples=200,
        attacks={
            name: AttackFigures(
                attack=name,
                adversarial_success_rate=fgsm if name == "fgsm" else fgsm / 2,
                samples=200,
            )
            for name in EVASION_ATTACKS
        },
        run_id="run-test",
    )


def write(
    console: Console, name: str, version: str, rec: RobustnessRecord, *, sign: bool = True
) -> None:
    """The record's tags on the version, signed with the signing key when there is one (as
    ``eval`` writes them)."""
    key = private_key_path(console.settings)
    tags = rec.signed_tags(key.read_bytes()) if sign and key.is_file() else rec.to_tags()

    async def go() -> None:
        registry = MlflowRegistry.connect(console.settings.mlflow.url, 10.0)
        try:
            await registry.set_version_tags(name, version, tags)
        finally:
            await registry.aclose()

    asyncio.run(go())


def promote(name: str, version: str, *extra: str) -> Any:
    return cli(
        "runbook", "run", "promote-model", "-p", f"model={name}", "-p", f"version={version}", *extra
    )


@pytest.fixture
def model(console: Console, seeded_model: SeededModel) -> SeededModel:
    """champion v2, previous v1; v1 is the candidate, and the champion's record is good."""
    assert seeded_model.previous == "1" and seeded_model.champion == "2"
    assert seeded_model.sha256["1"] != seeded_model.sha256["2"]
    write(console, seeded_model.name, "2", record(seeded_model, "2", fgsm=0.30))
    return seeded_model


def refused(result: Any, console: Console, model: SeededModel) -> str:
    assert result.exit_code != 0, result.output
    line = result.output.strip()
    assert "Traceback" not in line and len(line.splitlines()) == 1, line
    assert "precondition robustness.gate failed" in line
    assert aliases(console, model.name) == {"champion": "2", "previous": "1"}
    return line


def test_refused_without_a_recorded_evaluation(console: Console, model: SeededModel) -> None:
    forget(console, model.name, "1")
    line = refused(promote(model.name, "1", "--yes"), console, model)
    assert f"{model.name} v1 has no usable recorded evaluation (not evaluated)" in line
    assert f"aml-console eval {model.name} --version 1" in line


def test_refused_when_the_gate_is_missed(console: Console, model: SeededModel) -> None:
    write(console, model.name, "1", record(model, "1", fgsm=0.8, clean=0.85))
    line = refused(promote(model.name, "1", "--yes"), console, model)
    assert "misses the robustness gate" in line
    assert "fgsm adversarial_success_rate 0.800 is above the gate's 0.600" in line
    assert "clean_accuracy 0.850 is below the gate's 0.900" in line


def test_a_record_measured_with_another_detector_threshold_is_refused(
    console: Console, model: SeededModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A record's detector_fpr at flag_threshold 0.5 says nothing of the detector in force.
    write(console, model.name, "1", record(model, "1"))
    monkeypatch.setenv("CONSOLE_DETECTORS__FLAG_THRESHOLD", "0.9")
    line = refused(promote(model.name, "1", "--yes"), console, model)
    assert "detector measured at flag_threshold 0.5, [detectors] has 0.9" in line


def test_refused_when_worse_than_the_champion_beyond_the_margin(
    console: Console, model: SeededModel
) -> None:
    write(console, model.name, "2", record(model, "2", fgsm=0.10))
    write(console, model.name, "1", record(model, "1", fgsm=0.30))  # passes the gate itself
    line = refused(promote(model.name, "1", "--yes"), console, model)
    assert "is worse than the champion v2" in line
    assert "max_adversarial_success 0.300 is worse than the champion's 0.100 by 0.200" in line


def test_a_record_of_another_artifact_is_no_evaluation(
    console: Console, model: SeededModel
) -> None:
    # Tags copied from v2 (its sha256) onto v1: they measured another artifact.
    write(console, model.name, "1", record(model, "1", sha=model.sha256["2"]))
    line = refused(promote(model.name, "1", "--yes"), console, model)
    assert "no usable recorded evaluation (measured another artifact" in line
    assert model.sha256["2"][:12] in line and model.sha256["1"][:12] in line


def test_a_passing_version_is_promoted_and_the_plan_shows_both(
    console: Console, model: SeededModel
) -> None:
    write(console, model.name, "1", record(model, "1", fgsm=0.32, clean=0.97, fpr=0.03))
    plan = promote(model.name, "1", "--dry-run")
    assert plan.exit_code == 0, plan.output
    text = " ".join(plan.output.split())
    assert f"promote {model.name} v1 to champion (v2 -> previous)" in text
    assert (
        "candidate v1: clean_accuracy 0.970, max_adversarial_success 0.320, detector_fpr 0.030, "
        "evaluated 2026-12-03T12:00:00+00:00, eps 1, 200 samples, "
        "backdoor+fgsm+hopskipjump+pgd" in text
    )
    assert (
        "champion v2: clean_accuracy 0.950, max_adversarial_success 0.300, detector_fpr 0.040"
        in text
    )
    assert aliases(console, model.name) == {"champion": "2", "previous": "1"}

    done = promote(model.name, "1", "--yes", "-o", "json")
    assert done.exit_code == 0, done.output
    run = json.loads(done.output)["run"]
    assert run["status"] == "succeeded"
    assert run["outputs"] == {"champion": "1", "previous": "2"}
    assert aliases(console, model.name) == {"champion": "1", "previous": "2"}
    outcome = next(
        r
        for r in audit_records(console)
        if r["kind"] == "step-outcome" and r["step"] == "promote" and r["run_id"] == run["run_id"]
    )
    assert outcome["result"] == "ok" and outcome["before"]["champion"] == "2"
    assert outcome["after"]["robustness"]["candidate"]["max_adversarial_success"] == 0.32
    assert outcome["after"]["robustness"]["champion"]["version"] == "2"
    assert outcome["after"]["gate"]["max_adversarial_success"] == 0.6
    assert outcome["after"]["gate"]["epsilon"] == 1.0
    assert outcome["after"]["gate"]["detectors.flag_threshold"] == 0.5
    assert outcome["after"]["robustness"]["regression_check"] == "compared with the champion"
    assert "no regression check" not in text

    # Already champion: nothing to move, the gate still judged it.
    again = promote(model.name, "1", "--yes")
    assert again.exit_code == 0 and "already champion" in again.output


FAILS_AFTER_PROMOTE = """\
name: promote-then-hook
target: "model:{{ params.model }}"
parameters:
  model: {type: string, required: true}
steps:
  - id: promote
    action: registry.promote
    with: {model: "{{ params.model }}", version: "1"}
  - id: hook
    action: http.request
    with: {method: POST, url: "http://127.0.0.1:1/hook"}
"""


def test_a_later_failure_moves_both_aliases_back(
    console: Console, model: SeededModel, tmp_path: Path
) -> None:
    write(console, model.name, "1", record(model, "1"))
    runbook = tmp_path / "promote-then-hook.yaml"
    runbook.write_text(FAILS_AFTER_PROMOTE)
    result = run_cli(
        ["runbook", "run", str(runbook), "-p", f"model={model.name}", "--yes", "-o", "json"],
        console.env,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert json.loads(result.stdout)["run"]["status"] == "compensated"
    assert aliases(console, model.name) == {"champion": "2", "previous": "1"}


def promote_cli(name: str, version: str, env: dict[str, str], *extra: str) -> Any:
    """promote-model in a subprocess with ``env`` (a gate set through the environment)."""
    args = ["runbook", "run", "promote-model", "-p", f"model={name}", "-p", f"version={version}"]
    return run_cli([*args, *extra], env)


def gate_outcomes(console: Console) -> list[dict[str, Any]]:
    return [
        r
        for r in audit_records(console)
        if r["kind"] == "step-outcome" and r["action"] == "robustness.record_gate"
    ]


def test_a_gate_changed_between_promotions_is_audited(console: Console, model: SeededModel) -> None:
    write(console, model.name, "2", record(model, "2", fgsm=0.5))
    write(console, model.name, "1", record(model, "1", fgsm=0.5))
    first = promote_cli(model.name, "1", console.env, "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    [applied] = gate_outcomes(console)
    assert applied["after"]["gate"]["max_adversarial_success"] == 0.6
    assert applied["after"]["changed"] == {}

    # v2 (fgsm 0.7) misses the gate: the operator who must promote it loosens the gate.
    write(console, model.name, "2", record(model, "2", fgsm=0.7))
    blocked = promote_cli(model.name, "2", console.env, "--yes")
    assert blocked.returncode != 0 and "0.700 is above the gate's 0.600" in blocked.stderr
    env = {
        **console.env,
        "CONSOLE_ROBUSTNESS__MAX_ADVERSARIAL_SUCCESS": "0.75",
        "CONSOLE_ROBUSTNESS__MAX_REGRESSION": "0.25",
        "CONSOLE_OPERATOR": "lead-override",
    }
    second = promote_cli(model.name, "2", env, "--yes")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "the robustness gate changed since promote run" in " ".join(second.stdout.split())
    assert aliases(console, model.name) == {"champion": "2", "previous": "1"}
    changed = gate_outcomes(console)[-1]
    assert changed["result"] == "ok" and changed["operator"] == "lead-override"
    assert changed["after"]["changed"] == {
        "max_adversarial_success": "0.600 -> 0.750",
        "max_regression": "0.050 -> 0.250",
    }
    assert changed["after"]["changed_by"] == "lead-override"
    assert changed["before"]["run_id"] == applied["run_id"]
    assert changed["after"]["sources"]["env"]["CONSOLE_ROBUSTNESS__MAX_ADVERSARIAL_SUCCESS"] == (
        "0.75"
    )

    # The same gate again: recorded as applied, nothing changed.
    write(console, model.name, "1", record(model, "1", fgsm=0.5))
    third = promote_cli(model.name, "1", env, "--yes")
    assert third.returncode == 0, third.stdout + third.stderr
    last = gate_outcomes(console)[-1]
    assert last["result"] == "noop" and last["after"]["changed"] == {}
    assert last["after"]["gate"]["max_adversarial_success"] == 0.75


def test_rollback_shows_the_target_robustness(console: Console, model: SeededModel) -> None:
    forget(console, model.name, "1")
    plan = cli("runbook", "run", "rollback-model", "-p", f"model={model.name}", "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert "v1: not evaluated" in " ".join(plan.output.split())

    # A target known to miss the gate is still allowed (an incident action), and says so.
    write(console, model.name, "1", record(model, "1", fgsm=0.9))
    done = cli("runbook", "run", "rollback-model", "-p", f"model={model.name}", "--yes")
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert "MISSES THE GATE: fgsm adversarial_success_rate 0.900 is above the gate's 0.600" in text
    assert aliases(console, model.name)["champion"] == "1"
    outcome = next(
        r for r in audit_records(console) if r["kind"] == "step-intent" and r["step"] == "rollback"
    )
    assert outcome["after"]["robustness"]["max_adversarial_success"] == 0.9


def test_with_a_signing_key_an_unsigned_record_is_no_evaluation(
    console: Console, model: SeededModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone who can write a tag can write a passing record with the version's real sha256:
    once a signing key is in force, only a record signed by it counts."""
    key = tmp_path / "keys" / "model-signing.key"
    public = generate_key_pair(key)
    env = {
        "CONSOLE_MODELS__SIGNING_KEY": str(key),
        "CONSOLE_MODELS__SIGNING_PUBLIC_KEYS": json.dumps([str(public)]),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    keyed = Console(console.reload(), {**console.env, **env}, console.run_dir)
    assert private_key_path(keyed.settings) == key
    write(keyed, model.name, "2", record(model, "2"))
    write(keyed, model.name, "1", record(model, "1"), sign=False)
    line = refused(promote(model.name, "1", "--yes"), console, model)
    assert "no usable recorded evaluation (record not trusted: unsigned)" in line

    write(keyed, model.name, "1", record(model, "1"))
    done = promote(model.name, "1", "--yes")
    assert done.exit_code == 0, done.output
    assert aliases(console, model.name) == {"champion": "1", "previous": "2"}


def test_an_evaluated_poisoned_candidate_is_still_refused(
    console: Console, seeded_model: SeededModel
) -> None:
    """The lab's poisoned candidate, evaluated by `aml-console eval` like any other version: the
    backdoor itself is not what FGSM/PGD measure, but the poisoned logistic regression is less
    robust than the MLP champion by far more than the margin (and, at the default strength,
    over the gate), so the gate refuses it with the figure."""
    from console.lab.attacks.poisoning import run_poisoning

    name = seeded_model.name
    report = asyncio.run(
        run_poisoning(console.settings, "mallory-gate", model=name, promote=False, seed=4)
    )
    assert report.candidate == report.version and not report.promoted
    assert aliases(console, name) == {"champion": "2", "previous": "1", "candidate": report.version}
    figures = {}
    for version in ("2", report.version):
        done = run_cli(
            ["eval", name, "--version", version, "-o", "json"],  # every attack the gate asks
            console.env,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        figures[version] = json.loads(done.stdout)["max_adversarial_success"]
    result = promote(name, report.version, "--yes")
    assert result.exit_code != 0, (figures, result.output)
    line = result.output.strip()
    assert "precondition robustness.gate failed" in line and "Traceback" not in line
    assert "misses the robustness gate" in line or "is worse than the champion v2" in line
    assert "max_adversarial_success" in line or "adversarial_success_rate" in line
    assert aliases(console, name)["champion"] == "2"


LOOSER = {"CONSOLE_ROBUSTNESS__EPSILON": "0.5", "CONSOLE_ROBUSTNESS__ATTACKS": '["fgsm", "pgd"]'}


def test_a_measurement_change_between_promotions_is_audited(
    console: Console, model: SeededModel
) -> None:
    """Measuring at a lower epsilon, or with fewer attacks, loosens the gate as a threshold
    does: the gate step records it (old -> new), and the champion, measured at the old epsilon,
    is no reference for the candidate: the plan says there was no regression check."""
    write(console, model.name, "1", record(model, "1"))
    first = promote_cli(model.name, "1", console.env, "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert gate_outcomes(console)[-1]["after"]["gate"]["attacks"] == sorted(
        RobustnessSection().attacks
    )

    write(console, model.name, "2", record(model, "2", fgsm=0.5, epsilon=0.5))
    env = {**console.env, **LOOSER, "CONSOLE_OPERATOR": "loosener"}
    plan = promote_cli(model.name, "2", env, "--dry-run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    text = " ".join(plan.stdout.split())
    assert "the robustness gate changed since promote run" in text
    assert "epsilon 1.000 -> 0.500" in text
    assert "attacks backdoor+extraction+fgsm+hopskipjump+pgd -> fgsm+pgd" in text
    assert (
        "no regression check: champion v1's record was not measured as the gate asks: "
        "measured at epsilon 1, the gate's is 0.5" in text
    )

    second = promote_cli(model.name, "2", env, "--yes")
    assert second.returncode == 0, second.stdout + second.stderr
    assert aliases(console, model.name) == {"champion": "2", "previous": "1"}
    changed = gate_outcomes(console)[-1]
    assert changed["result"] == "ok" and changed["after"]["changed_by"] == "loosener"
    assert changed["after"]["changed"] == {
        "epsilon": "1.000 -> 0.500",
        "attacks": "backdoor+extraction+fgsm+hopskipjump+pgd -> fgsm+pgd",
    }
    promoted = next(
        r
        for r in audit_records(console)
        if r["kind"] == "step-outcome"
        and r["step"] == "promote"
        and r["run_id"] == changed["run_id"]
    )
    assert promoted["after"]["robustness"]["regression_check"].startswith(
        "no regression check: champion v1's"
    )


GATE_ONLY = """\
name: gate-only
target: "model:{{ params.model }}"
parameters:
  model: {type: string, required: true}
steps:
  - id: gate
    action: robustness.record_gate
    with: {model: "{{ params.model }}"}
"""


def test_a_runbook_recording_the_gate_alone_does_not_absorb_a_change(
    console: Console, model: SeededModel, tmp_path: Path
) -> None:
    """A custom runbook with only a record_gate step records the loosened gate, but the next
    promotion still compares with the gate the last promotion applied."""
    write(console, model.name, "1", record(model, "1"))
    first = promote_cli(model.name, "1", console.env, "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    baseline = gate_outcomes(console)[-1]

    runbook = tmp_path / "gate-only.yaml"
    runbook.write_text(GATE_ONLY)
    env = {**console.env, **LOOSER}
    absorb = run_cli(["runbook", "run", str(runbook), "-p", f"model={model.name}", "--yes"], env)
    assert absorb.returncode == 0, absorb.stdout + absorb.stderr
    assert gate_outcomes(console)[-1]["after"]["changed"]["epsilon"] == "1.000 -> 0.500"

    write(console, model.name, "2", record(model, "2", fgsm=0.5, epsilon=0.5))
    second = promote_cli(model.name, "2", env, "--yes")
    assert second.returncode == 0, second.stdout + second.stderr
    last = gate_outcomes(console)[-1]
    assert last["result"] == "ok", last
    assert last["before"]["run_id"] == baseline["run_id"]
    assert last["after"]["changed"]["epsilon"] == "1.000 -> 0.500"


def test_an_older_gate_record_without_the_measurement_reads_as_unset(
    console: Console, model: SeededModel
) -> None:
    """A promotion recorded before the measurement joined the gate (its audit ``gate`` holds
    the 4 thresholds only) stays readable: each missing key reads ``unset`` and counts as
    changed, so the first promotion after the upgrade records the whole measurement."""
    from console.audit.log import AuditLog
    from console.audit.records import AuditEvent

    log = AuditLog.from_settings(console.settings)
    gate = console.settings.robustness
    old = {n: float(getattr(gate, n)) for n in GATE_FIELDS}
    for action, step, after in (
        ("robustness.record_gate", "gate", {"gate": old, "changed": {}}),
        ("registry.promote", "promote", {"champion": "2"}),
    ):
        log.append(
            AuditEvent(
                kind="step-outcome",
                operator="before-upgrade",
                environment="test",
                run_id="run-old",
                runbook="promote-model",
                step=step,
                action=action,
                arguments={"model": model.name},
                after=after,
                result="ok",
            )
        )
    write(console, model.name, "1", record(model, "1"))
    plan = promote(model.name, "1", "--dry-run")
    assert plan.exit_code == 0, plan.output
    text = " ".join(plan.output.split())
    assert "changed since promote run run-old by before-upgrade" in text, text
    assert "epsilon unset -> 1.000" in text, text
    assert f"samples unset -> {gate.samples}" in text
    assert "detectors.squeezers unset -> bits2" in text
    changes = text.split("changed since")[1].split(" by oncall")[0]
    assert "max_" not in changes and "min_" not in changes  # the thresholds are unchanged
