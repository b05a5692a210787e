"""Champion moves only through the robustness gate or a rollback, from the CLI on the real
MLflow: set-model-alias refuses champion and previous (previous is where a rollback goes without
the gate); a rollback of champion to any other alias is judged by the gate like a promotion;
and promotions are registry changes in the Mitigations view (``get mitigations``, with the
runbook that undoes each) and events of an incident's timeline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gate_records import put_gate_record
from registry_cli_support import aliases, cli, forget
from runbook_support import Console, audit_records

from console.adapters.backends import Backends
from console.lab.seed import SeededModel
from console.views.mitigations import Revert, fetch_mitigations, revert_of


def one_line_error(result: Any) -> str:
    assert result.exit_code != 0, result.output
    line = result.output.strip()
    assert "Traceback" not in line and len(line.splitlines()) == 1, line
    return line


def runbook(name: str, *params: str) -> Any:
    return cli("runbook", "run", name, *[a for p in params for a in ("-p", p)], "--yes")


SEEDED = {"champion": "2", "previous": "1"}


def test_set_model_alias_refuses_champion_and_previous(
    console: Console, seeded_model: SeededModel
) -> None:
    name = seeded_model.name
    assert aliases(console, name) == SEEDED
    champion = one_line_error(
        runbook("set-model-alias", f"model={name}", "alias=champion", "version=1")
    )
    assert f"registry.set_alias does not move {name}@champion" in champion
    assert f"promote-model -p model={name} -p version=N" in champion
    assert "rollback-model" in champion
    previous = one_line_error(
        runbook("set-model-alias", f"model={name}", "alias=previous", "version=2")
    )
    assert f"does not move {name}@previous" in previous and "promote-model" in previous
    shouted = runbook("set-model-alias", f"model={name}", "alias=Champion", "version=1")
    assert "does not move" in one_line_error(shouted)  # whatever case the registry ignores
    # No default alias any more (it was champion): a missing one is asked for, not guessed.
    missing = one_line_error(runbook("set-model-alias", f"model={name}", "version=1"))
    assert "alias" in missing
    assert aliases(console, name) == SEEDED
    assert not [r for r in audit_records(console) if r["kind"] == "step-outcome"]

    moved = runbook("set-model-alias", f"model={name}", "alias=candidate", "version=1")
    assert moved.exit_code == 0, moved.output
    assert aliases(console, name) == {**SEEDED, "candidate": "1"}


ROLLBACK_PREVIOUS = """\
name: previous-to-candidate
target: "model:{{ params.model }}"
parameters:
  model: {type: string, required: true}
steps:
  - id: move
    action: registry.rollback
    with: {model: "{{ params.model }}", alias: previous, to_alias: candidate}
"""


def test_a_rollback_to_another_alias_than_previous_goes_through_the_gate(
    console: Console, seeded_model: SeededModel, tmp_path: Path
) -> None:
    name = seeded_model.name
    assert (
        runbook("set-model-alias", f"model={name}", "alias=candidate", "version=1").exit_code == 0
    )
    forget(console, name, "1")
    refused = one_line_error(runbook("rollback-model", f"model={name}", "to_alias=candidate"))
    assert f"{name} v1 has no usable recorded evaluation (not evaluated)" in refused
    assert "a rollback to 'candidate', not previous, goes through the robustness gate" in refused
    assert aliases(console, name) == {**SEEDED, "candidate": "1"}

    # previous cannot be pointed at the candidate either, by any runbook.
    custom = tmp_path / "previous-to-candidate.yaml"
    custom.write_text(ROLLBACK_PREVIOUS)
    moved = cli("runbook", "run", str(custom), "-p", f"model={name}", "--yes")
    assert f"registry.rollback does not move {name}@previous" in one_line_error(moved)

    put_gate_record(console.settings, seeded_model, "1", worst=0.42)
    done = cli(
        "runbook", "run", "rollback-model", "-p", f"model={name}", "-p", "to_alias=candidate",
        "--yes", "-o", "json",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert aliases(console, name)["champion"] == "1"
    run_id = json.loads(done.output)["run"]["run_id"]
    outcome = next(
        r
        for r in audit_records(console)
        if r["kind"] == "step-outcome" and r["run_id"] == run_id and r["step"] == "rollback"
    )
    assert outcome["after"]["gate"]["max_adversarial_success"] == 0.6
    assert outcome["after"]["robustness"]["max_adversarial_success"] == 0.42


def registry_rows(console: Console) -> list[dict[str, Any]]:
    shown = cli("get", "mitigations", "-o", "json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    rows = data if isinstance(data, list) else data.get("items", data.get("rows", []))
    return [r for r in rows if r["kind"] == "registry-change"]


def test_promotions_are_registry_changes_and_incident_events_and_their_undo_is_gated(
    console: Console, seeded_model: SeededModel
) -> None:
    name = seeded_model.name
    opened = cli("incident", "open", "--model", name, "--kind", "poisoning", "-o", "json")
    assert opened.exit_code == 0, opened.output
    incident = json.loads(opened.stdout)["id"]
    put_gate_record(console.settings, seeded_model, "1", worst=0.42)
    assert runbook("promote-model", f"model={name}", "version=1").exit_code == 0
    assert aliases(console, name) == {"champion": "1", "previous": "2"}
    rolled = runbook("rollback-model", f"model={name}")
    assert rolled.exit_code == 0, rolled.output
    assert aliases(console, name)["champion"] == "2"

    rows = registry_rows(console)
    promoted = next(r for r in rows if r["runbook"] == "promote-model")
    assert (promoted["alias"], promoted["before_version"]) == ("champion", "2")
    assert set(promoted["before"].split(", ")) == {f"model={name}", "champion=2", "previous=1"}
    assert set(promoted["after"].split(", ")) == {f"model={name}", "champion=1", "previous=2"}
    rollback = next(r for r in rows if r["runbook"] == "rollback-model")
    assert (rollback["alias"], rollback["before_version"]) == ("champion", "1")
    assert "robustness" not in rollback["after"]  # the figures stay in the audit log

    async def reverts() -> dict[str, Revert | str]:
        backends = Backends(console.settings)
        try:
            snapshot = await fetch_mitigations(backends)
        finally:
            await backends.aclose()
        return {c.runbook: revert_of(c) for c in snapshot.registry_changes}

    undo = asyncio.run(reverts())
    promote_undo, rollback_undo = undo["promote-model"], undo["rollback-model"]
    assert isinstance(promote_undo, Revert) and isinstance(rollback_undo, Revert)
    assert (promote_undo.runbook, promote_undo.params) == ("rollback-model", {"model": name})
    assert (rollback_undo.runbook, rollback_undo.params) == (
        "promote-model",
        {"model": name, "version": "1"},
    )
    # Undoing the rollback puts v1 back in service: the gate judges it, as any promotion.
    forget(console, name, "1")
    line = one_line_error(
        runbook(rollback_undo.runbook, *(f"{k}={v}" for k, v in rollback_undo.params.items()))
    )
    assert "precondition robustness.gate failed" in line and "not evaluated" in line
    assert aliases(console, name)["champion"] == "2"

    shown = cli("incident", "show", incident, "-o", "json")
    assert shown.exit_code == 0, shown.output
    timeline = json.loads(shown.stdout)["timeline"]
    [promotion] = [e for e in timeline if e["kind"] == "promotion"]
    assert (
        f"promote-model/promote registry.promote: {name} v1 -> champion (v2 -> previous); "
        "gate passed: clean_accuracy 0.950, max_adversarial_success 0.420" in promotion["detail"]
    )
    assert promotion["operator"] == "oncall-tester"
    assert any(e["kind"] == "mitigation" and "registry.rollback" in e["detail"] for e in timeline)
