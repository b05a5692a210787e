"""Parameter values are checked before anything is read or written."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from runbook_support import Console
from typer.testing import CliRunner

from console.cli.main import app
from console.errors import ParameterError
from console.runbooks.loader import load_runbook
from console.runbooks.params import parse_assignments, resolve

REPO = Path(__file__).resolve().parents[2]
BLOCK = load_runbook(REPO / "runbooks" / "block-client.yaml").runbook
BUDGET = load_runbook(REPO / "runbooks" / "lower-query-budget.yaml").runbook

HOSTILE_CLIENT_IDS = [
    "acme; rm -rf /",
    "$(id)",
    "`id`",
    "../../etc/passwd",
    "a/b",
    "acme\nSET x y",
    "acme\x1b[31mred",
    "\x1b]52;c;ZXZpbA==\x07",
    "x" * 10_000,
    "",
    "*",
]


@pytest.mark.parametrize("client", HOSTILE_CLIENT_IDS)
def test_hostile_client_ids_are_refused(client: str) -> None:
    with pytest.raises(ParameterError) as err:
        resolve(BLOCK, {"client": client, "reason": "test"})
    message = str(err.value)
    assert "client" in message
    assert "\n" not in message and "\x1b" not in message


def test_typed_values_defaults_and_bounds() -> None:
    values = resolve(BLOCK, {"client": "acme-7", "reason": "extraction"})
    assert values["ttl"] == timedelta(hours=1)
    with pytest.raises(ParameterError, match="shorter than the minimum"):
        resolve(BLOCK, {"client": "acme-7", "reason": "x" * 5, "ttl": "10s"})
    with pytest.raises(ParameterError, match="is not an integer"):
        resolve(BUDGET, {"client": "acme-7", "qpm": "ten"})
    with pytest.raises(ParameterError, match="above the maximum"):
        resolve(BUDGET, {"client": "acme-7", "qpm": "100001"})


def test_all_problems_at_once() -> None:
    with pytest.raises(ParameterError) as err:
        resolve(BLOCK, {"client": "ok", "colour": "red", "ttl": "soon"})
    message = str(err.value)
    assert "unknown parameter 'colour'" in message
    assert "'reason' is required" in message
    assert "not a duration" in message


def test_reason_rejects_control_characters_and_long_text() -> None:
    with pytest.raises(ParameterError, match="control characters"):
        resolve(BLOCK, {"client": "ok", "reason": "line1\nline2"})
    with pytest.raises(ParameterError, match="at most 200"):
        resolve(BLOCK, {"client": "ok", "reason": "x" * 10_000})


def test_assignments() -> None:
    assert parse_assignments(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ParameterError):
        parse_assignments(["novalue"])
    with pytest.raises(ParameterError, match="twice"):
        parse_assignments(["a=1", "a=2"])


def test_huge_durations_and_bad_references_are_clear(console: Console, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "runbook",
            "run",
            "block-client",
            "-p",
            "client=c",
            "-p",
            "reason=why",
            "-p",
            "ttl=99999999999w",
            "--dry-run",
        ],
    )
    assert result.exit_code == 1 and "longer than 100 years" in result.output
    bad = tmp_path / "bad-ref.yaml"
    bad.write_text(
        'name: bad-ref\ntarget: "client:{{ params.client.x }}"\n'
        "parameters:\n  client: {type: string, required: true}\n"
        "steps:\n  - id: a\n    action: policy.unblock_client\n"
        '    with: {client: "{{ params.client }}"}\n'
    )
    result = CliRunner().invoke(app, ["runbook", "run", str(bad), "-p", "client=c", "--dry-run"])
    assert result.exit_code == 1 and "no 'x'" in result.output


PATHOLOGICAL = """\
name: nested-quantifier
target: "x:{{ params.word }}"
parameters:
  word: {type: string, required: true, pattern: '^(a+)+$'}
steps:
  - id: wait
    action: control.wait
    with: {duration: 1s}
"""


@pytest.mark.timeout(20)
def test_a_nested_quantifier_answers_at_once(tmp_path: Path) -> None:
    """`^(a+)+$` on 31 characters took 41 s of CPU with Python's backtracking engine."""
    path = tmp_path / "nested.yaml"
    path.write_text(PATHOLOGICAL)
    runbook = load_runbook(path).runbook
    with pytest.raises(ParameterError, match=r"does not match \^\(a\+\)\+\$"):
        resolve(runbook, {"word": "a" * 31 + "!"})
    assert resolve(runbook, {"word": "a" * 31}) == {"word": "a" * 31}


def test_a_pattern_the_linear_engine_cannot_run_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "backref.yaml"
    path.write_text(PATHOLOGICAL.replace("'^(a+)+$'", "'^(a)\\1$'"))
    result = CliRunner().invoke(app, ["runbook", "validate", str(path)])
    assert result.exit_code == 1
    expected = "parameters.word.pattern: Value error, pattern is not a valid RE2 expression: "
    assert f"{path}:4: {expected}" in result.output
    assert "invalid escape sequence" in result.output and len(result.output.splitlines()) == 1
