"""Who may run what (issue 15): the context's ACL policy, checked by the engine before it plans
and again before it applies, through ``aml-console runbook run`` on the real Redis policy
store. Allow, deny (the deny wins and is named), no matching rule in a context that has a
policy (denied), a tag, a target outside the rule, an invalid policy file, no policy at all."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from click.testing import Result
from runbook_support import Console
from typer.testing import CliRunner

from console.acl import AclPolicy, decide
from console.cli.main import app

POLICY = """\
groups:
  oncall: [alice, bob]
rules:
  - name: oncall-blocks-clients
    operators: [group:oncall]
    runbooks: [block-client, "tag:containment"]
    targets: ["client:*"]
    allow: [run]
  - name: bob-never-blocks-vips
    operators: [bob]
    runbooks: ["*"]
    targets: ["client:vip-*"]
    deny: [run]
  - name: leads-approve
    operators: [carol]
    runbooks: ["*"]
    allow: [approve]
"""


def _run(console: Console, policy: Path | None, operator: str, client: str) -> Result:
    env = {"CONSOLE_OPERATOR": operator}
    if policy is not None:
        env["CONSOLE_ACL__PATH"] = str(policy)
    args = [
        "runbook",
        "run",
        "block-client",
        "-p",
        f"client={client}",
        "-p",
        "reason=acl test",
        "--yes",
    ]
    return CliRunner().invoke(app, args, env=env)


def _blocked(console: Console, client: str) -> bool:
    db = redis.Redis.from_url(console.settings.redis.url, decode_responses=True)
    return bool(db.exists(f"{console.settings.redis.key_prefix}:policy:block:{client}"))


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "acl.yaml"
    path.write_text(POLICY)
    return path


def test_an_allowed_operator_runs_and_the_others_are_refused_by_name(
    console: Console, policy: Path
) -> None:
    allowed = _run(console, policy, "alice", "acl-c1")
    assert allowed.exit_code == 0, allowed.output
    assert _blocked(console, "acl-c1")

    # lower-query-budget is not named by any rule, but tagged containment in its file.
    by_tag = CliRunner().invoke(
        app,
        ["runbook", "run", "lower-query-budget", "-p", "client=acl-c8", "-p", "qpm=100", "--yes"],
        env={"CONSOLE_OPERATOR": "bob", "CONSOLE_ACL__PATH": str(policy)},
    )
    assert by_tag.exit_code == 0, by_tag.output

    denied = _run(console, policy, "bob", "vip-acl-c2")  # oncall, but the deny wins
    assert denied.exit_code == 1
    assert "denied by ACL rule 'bob-never-blocks-vips'" in denied.stderr
    assert len(denied.stderr.strip().splitlines()) == 1
    assert not _blocked(console, "vip-acl-c2")

    nobody = _run(console, policy, "mallory", "acl-c3")  # no rule names her: denied
    assert nobody.exit_code == 1
    assert "no ACL rule allows 'mallory' to run block-client on client:acl-c3" in nobody.stderr
    assert not _blocked(console, "acl-c3")

    approver = _run(console, policy, "carol", "acl-c4")  # may approve, not run
    assert approver.exit_code == 1 and "no ACL rule allows 'carol'" in approver.stderr


def test_without_a_policy_everything_is_allowed_and_a_bad_policy_refuses_all(
    console: Console, tmp_path: Path
) -> None:
    assert _run(console, None, "mallory", "acl-c5").exit_code == 0
    assert _blocked(console, "acl-c5")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - name: x\n    operators: [alice]\n    runbooks: [a]\n")
    refused = _run(console, broken, "alice", "acl-c6")
    assert refused.exit_code == 1
    assert "ACL policy is not valid" in refused.stderr and "broken.yaml:2" in refused.stderr
    assert not _blocked(console, "acl-c6")
    missing = _run(console, tmp_path / "absent.yaml", "alice", "acl-c7")
    assert missing.exit_code == 1 and not _blocked(console, "acl-c7")


def test_rules_by_tag_target_and_action() -> None:
    import yaml

    policy = AclPolicy.model_validate(yaml.safe_load(POLICY))
    by_tag = decide(policy, "bob", "run", "contain-extraction", ["containment"], ["client:x"])
    assert by_tag.allowed and by_tag.rule == "oncall-blocks-clients"
    untagged = decide(policy, "bob", "run", "contain-extraction", [], ["client:x"])
    assert not untagged.allowed and untagged.rule is None
    off_target = decide(policy, "alice", "run", "block-client", [], ["client:x", "model:digits"])
    assert not off_target.allowed  # the allow covers client:* only, not every target
    assert decide(policy, "carol", "approve", "rollback-model", [], ["model:digits"]).allowed
    assert not decide(policy, "alice", "approve", "block-client", [], ["client:x"]).allowed
