"""``doctor`` reads the context's ACL policy: none (everything allowed, said), a valid one
(its rules that name the operator), a broken one (failed, file:line, exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

from doctor_support import by_name, doctor_config, run_doctor
from support import LabHandle

POLICY = """\
groups:
  oncall: [doctor-op]
rules:
  - name: oncall-runs
    operators: [group:oncall]
    runbooks: ["*"]
    allow: [run]
  - name: others
    operators: [somebody]
    runbooks: ["*"]
    allow: [run]
"""


def _with_acl(config: Path, policy: Path) -> None:
    text = config.read_text()
    text = 'operator = "doctor-op"\n' + text
    config.write_text(text + f"\n[acl]\npath = {json.dumps(str(policy))}\n")


def test_doctor_reports_the_policy(lab: LabHandle, tmp_path: Path) -> None:
    _, reports = run_doctor(doctor_config(tmp_path / "none"))
    acl = by_name(reports)["acl"]
    assert acl["ok"] and "every operator may run every runbook" in acl["checks"][0]["detail"]

    config = doctor_config(tmp_path / "valid")
    policy = tmp_path / "acl.yaml"
    policy.write_text(POLICY)
    _with_acl(config, policy)
    _, reports = run_doctor(config)
    acl = by_name(reports)["acl"]
    assert (
        acl["ok"]
        and "2 rules, 1 groups; 1 apply to 'doctor-op' (oncall-runs)"
        in (acl["checks"][0]["detail"])
    )

    broken_config = doctor_config(tmp_path / "broken")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - name: x\n    operators: [a]\n    runbooks: [b]\n")
    _with_acl(broken_config, broken)
    result, reports = run_doctor(broken_config)
    acl = by_name(reports)["acl"]
    assert not acl["ok"] and result.returncode != 0
    assert "broken.yaml:2" in acl["checks"][0]["detail"]


def test_doctor_says_who_acts_and_which_runs_wait_for_approval(
    lab: LabHandle, tmp_path: Path
) -> None:
    config = doctor_config(tmp_path / "who")
    text = config.read_text()
    config.write_text(
        'operator = "doctor-op"\n' + text + '\n[approvals]\nrequired = "changes"\n'
        'ttl = "10m"\napprovers = ["group:leads"]\n'
    )
    _, reports = run_doctor(config)
    checks = {c["name"]: c["detail"] for c in by_name(reports)["acl"]["checks"]}
    assert checks["operator"].startswith("doctor-op (set); a self-claimed name")
    assert checks["approvals"] == (
        "every run that changes something waits for approval by group:leads (ttl 10m)"
    )
