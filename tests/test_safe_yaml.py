"""The bounded safe YAML loader on its own: a model with file:line errors, and every guard (size,
aliases, nodes, depth, encoding, tags, documents that are not one mapping, files that cannot be
read), each refused as the caller's error with one line per problem."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from console.errors import DrillScenarioError, RunbookValidationError
from console.safe_yaml import (
    Limits,
    find_yaml,
    load_model,
    parse_document,
    parse_model,
    yaml_files,
)


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    retries: int = 0


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    steps: list[Step] = Field(min_length=1)
    notes: dict[str, str] = Field(default_factory=dict)


GOOD = "name: p\nsteps:\n  - id: a\n  - id: b\n    retries: 2\n"


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "doc.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _problems(tmp_path: Path, content: str | bytes, limits: Limits | None = None) -> list[str]:
    path = _write(tmp_path, content)
    with pytest.raises(RunbookValidationError) as caught:
        load_model(path, Plan, error=RunbookValidationError, limits=limits or Limits())
    problems = caught.value.problems
    assert problems and all("\n" not in p and str(path) in p for p in problems), problems
    return problems


def test_a_valid_file_gives_the_model_its_lines_and_digest(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    loaded = load_model(path, Plan, error=RunbookValidationError)
    assert loaded.model.steps[1].retries == 2 and loaded.path == path
    assert loaded.lines.line_of(("steps", 1, "retries")) == 5
    assert loaded.lines.line_of(("steps", 1, "nowhere")) == 4  # nearest ancestor
    assert loaded.lines.problem(("steps", 0, "id"), "taken") == f"{path}:3: steps.0.id: taken"
    assert len(loaded.sha256) == 64
    assert parse_model(GOOD, path, Plan, error=RunbookValidationError).sha256 == loaded.sha256


def test_the_callers_error_type_is_raised(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: [unclosed\n")
    with pytest.raises(DrillScenarioError) as caught:
        load_model(path, Plan, error=DrillScenarioError)
    assert caught.value.problems[0].startswith(f"{path}:")


def test_wrong_type_names_its_line_and_field(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GOOD + "  - id: c\n    retries: lots\n")
    assert problems == [
        f"{tmp_path / 'doc.yaml'}:7: steps.2.retries: Input should be a valid integer, "
        "unable to parse string as an integer"
    ]


def test_every_schema_problem_is_reported(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "name: p\nsteps:\n  - retries: x\n    colour: red\n")
    joined = "\n".join(problems)
    assert len(problems) == 3
    assert ":3: steps.0.id: Field required" in joined
    assert ":3: steps.0.retries:" in joined and ":4: steps.0.colour:" in joined


def test_malformed_yaml_names_its_line(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, GOOD + "  - id: [unclosed\n  - id: d\n")
    assert problem.startswith(f"{tmp_path / 'doc.yaml'}:7: invalid YAML:"), problem


def test_python_tags_are_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    [problem] = _problems(tmp_path, f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    assert ":1: invalid YAML:" in problem
    assert not marker.exists()


def test_a_duplicated_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    """``yaml.safe_load`` would keep the last value unseen; every repeat is refused instead."""
    text = "name: p\nsteps:\n  - id: a\n    retries: 1\n    'retries': 2\nsteps:\n  - id: b\n"
    problems = _problems(tmp_path, text)
    path = tmp_path / "doc.yaml"
    assert problems == [
        f"{path}:5: duplicate key 'retries' (first at line 4)",
        f"{path}:6: duplicate key 'steps' (first at line 2)",
    ]
    twice = "name: p\nname: q\nsteps: [{id: a}]\n"
    with pytest.raises(RunbookValidationError, match=r":2: duplicate key 'name' \(first at line 1"):
        parse_model(twice, path, Plan, error=RunbookValidationError)


def test_keys_that_only_look_alike_are_not_duplicates(tmp_path: Path) -> None:
    """A merge key yields to the mapping's own keys; 1 and '1' are different keys."""
    text = "name: p\nsteps:\n  - &s {id: a, retries: 1}\n  - <<: *s\n    retries: 2\n"
    loaded = parse_model(text, tmp_path / "m.yaml", Plan, error=RunbookValidationError)
    assert [s.retries for s in loaded.model.steps] == [1, 2]
    document = parse_document("1: a\n'1': b\n", tmp_path / "k.yaml", error=RunbookValidationError)
    assert document.data == {1: "a", "1": "b"}


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    started = time.monotonic()
    [problem] = _problems(tmp_path, "\n".join(lines) + "\n")
    assert time.monotonic() - started < 5
    assert "rejected: more than 64 YAML aliases" in problem and ":9:" in problem  # a8, 65th


def test_an_expansion_within_the_alias_limit_is_bounded_by_nodes(tmp_path: Path) -> None:
    """Six levels of ten aliases each are 60 aliases but 10^7 nodes once expanded."""
    lines = ["a0: &a0 [" + ",".join(["x"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    started = time.monotonic()
    [problem] = _problems(tmp_path, "\n".join(lines) + "\n")
    assert time.monotonic() - started < 5
    assert "rejected: more than 20000 YAML nodes" in problem


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, "x: " + "[" * 40 + "]" * 40 + "\n")
    assert "rejected: nested deeper than 32 levels" in problem and ":1:" in problem
    nested = "".join(f"{'  ' * i}k{i}:\n" for i in range(40)) + "  " * 40 + "v: 1\n"
    [problem] = _problems(tmp_path, nested)
    assert "rejected: nested deeper than 32 levels" in problem


def test_an_oversized_file_or_text_is_refused(tmp_path: Path) -> None:
    huge = "# " + "x" * (300 * 1024) + "\n"
    [problem] = _problems(tmp_path, huge)
    assert problem == f"{tmp_path / 'doc.yaml'}: {len(huge)} bytes, larger than {256 * 1024}"
    [small] = _problems(tmp_path, GOOD + "#" * 100 + "\n", Limits(max_bytes=64))
    assert "larger than 64" in small
    with pytest.raises(RunbookValidationError, match="larger than 64"):
        parse_document(
            GOOD * 4,
            tmp_path / "text.yaml",
            error=RunbookValidationError,
            limits=Limits(max_bytes=64),
        )


def test_non_utf8_is_refused_with_the_byte(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, b"name: caf\xe9\nsteps: [{id: a}]\n")
    assert problem == f"{tmp_path / 'doc.yaml'}: not UTF-8 (byte 9)"


def test_a_directory_or_missing_file_cannot_be_read(tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing.yaml"):
        with pytest.raises(RunbookValidationError) as caught:
            load_model(path, Plan, error=RunbookValidationError)
        [problem] = caught.value.problems
        assert problem.startswith(f"{path}: cannot read: "), problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ":1: the file is empty"),
        ("# only a comment\n", ":1: the file is empty"),
        ("- name: p\n", ":1: a plan is a mapping (name, steps, ...)"),
        ("just words\n", ":1: a plan is a mapping (name, steps, ...)"),
        (GOOD + "---\n" + GOOD, "invalid YAML: but found another document"),
    ],
)
def test_a_document_that_is_not_one_mapping_is_refused(
    tmp_path: Path, text: str, expected: str
) -> None:
    [problem] = _problems(tmp_path, text)
    assert expected in problem, problem


def test_yaml_files_and_find_yaml(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(GOOD)
    (tmp_path / "a.yml").write_text(GOOD)
    (tmp_path / "c.txt").write_text(GOOD)
    assert [p.name for p in yaml_files([tmp_path, tmp_path / "missing"])] == ["a.yml", "b.yaml"]
    assert find_yaml("b", [tmp_path]) == tmp_path / "b.yaml"
    assert find_yaml(str(tmp_path / "a.yml"), []) == tmp_path / "a.yml"
    assert find_yaml("nope", [tmp_path]) is None
