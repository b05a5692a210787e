"""Read runbook files safely and report every problem with file:line and field path."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from console.errors import RunbookValidationError
from console.runbooks.model import Runbook
from console.runbooks.template import ROOTS, references

MAX_BYTES = 256 * 1024
MAX_NODES = 20_000
MAX_DEPTH = 32
MAX_ALIASES = 64

Path_ = tuple[str | int, ...]


class _LimitExceeded(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases while composing, so alias bombs stop early."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # The composer recurses once per nesting level: stop before Python's stack does.
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _LimitExceeded(f"nested deeper than {MAX_DEPTH} levels", mark.line + 1)
            return self._compose_counted(parent, index)
        finally:
            self.depth -= 1

    def _compose_counted(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _LimitExceeded(
                    f"more than {MAX_ALIASES} YAML aliases", event.start_mark.line + 1
                )
        return super().compose_node(parent, index)


@dataclass(frozen=True)
class LoadedRunbook:
    runbook: Runbook
    path: Path
    sha256: str


def load_runbook(path: Path) -> LoadedRunbook:
    """Parse and validate one file. Raises RunbookValidationError listing every problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RunbookValidationError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_runbook(raw, path)


def parse_runbook(raw: bytes, path: Path) -> LoadedRunbook:
    if len(raw) > MAX_BYTES:
        raise RunbookValidationError([f"{path}: {len(raw)} bytes, larger than {MAX_BYTES}"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunbookValidationError([f"{path}: not UTF-8 (byte {exc.start})"]) from None
    data, lines = parse_yaml(text, path)
    if not isinstance(data, dict):
        raise RunbookValidationError([f"{path}:1: a runbook is a mapping (name, steps, ...)"])
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(f"{path}:{line_of(lines, loc)}: {dotted(loc)}: {err['msg']}")
        raise RunbookValidationError(problems) from None
    problems = [
        f"{path}:{line_of(lines, loc)}: {dotted(loc)}: {msg}" for loc, msg in _semantics(runbook)
    ]
    if problems:
        raise RunbookValidationError(problems)
    return LoadedRunbook(runbook=runbook, path=path, sha256=hashlib.sha256(raw).hexdigest())


def parse_yaml(text: str, path: Path) -> tuple[Any, dict[Path_, int]]:
    loader = _BoundedSafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise RunbookValidationError([f"{path}:1: the file is empty"])
        lines: dict[Path_, int] = {}
        _index(node, (), lines, [0], 0)
        return loader.construct_document(node), lines
    except _LimitExceeded as exc:
        raise RunbookValidationError([f"{path}:{exc.line}: rejected: {exc}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        reason = exc.problem or exc.context or "invalid YAML"
        raise RunbookValidationError([f"{path}:{line}: invalid YAML: {reason}"]) from None
    except yaml.YAMLError as exc:
        raise RunbookValidationError([f"{path}: invalid YAML: {exc}"]) from None
    except RecursionError:
        raise RunbookValidationError([f"{path}: rejected: nested too deeply"]) from None
    finally:
        loader.dispose()


def _index(
    node: yaml.Node, at: Path_, lines: dict[Path_, int], count: list[int], depth: int
) -> None:
    """Map each field path to its line, bounding the nodes visited (aliases included)."""
    count[0] += 1
    line = node.start_mark.line + 1
    if count[0] > MAX_NODES:
        raise _LimitExceeded(f"more than {MAX_NODES} YAML nodes (alias expansion?)", line)
    if depth > MAX_DEPTH:
        raise _LimitExceeded(f"nested deeper than {MAX_DEPTH} levels", line)
    lines.setdefault(at, line)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(count[0])
            lines.setdefault((*at, key), key_node.start_mark.line + 1)
            _index(value_node, (*at, key), lines, count, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*at, i), lines, count, depth + 1)


def line_of(lines: dict[Path_, int], loc: tuple[Any, ...]) -> int:
    for end in range(len(loc), -1, -1):
        key = tuple(loc[:end])
        if key in lines:
            return lines[key]
    return 1


def dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top)"


def _semantics(runbook: Runbook) -> Iterator[tuple[Path_, str]]:
    """What the schema alone cannot see: actions, their arguments, references."""
    from console.runbooks.actions import ACTIONS, CHECKS

    params = set(runbook.parameters)
    yield from _refs(runbook.target, ("target",), params, set())
    for i, pre in enumerate(runbook.preconditions):
        at: Path_ = ("preconditions", i)
        if pre.check not in CHECKS:
            yield (*at, "check"), f"unknown check {pre.check!r} (known: {', '.join(CHECKS)})"
        else:
            yield from _args(CHECKS[pre.check].Args, pre.with_, (*at, "with"))
        yield from _refs(pre.with_, (*at, "with"), params, set())
    earlier: set[str] = set()
    for i, step in enumerate(runbook.steps):
        at = ("steps", i)
        if step.action not in ACTIONS:
            known = ", ".join(sorted(ACTIONS))
            yield (*at, "action"), f"unknown action type {step.action!r} (known: {known})"
        else:
            yield from _args(ACTIONS[step.action].Args, step.with_, (*at, "with"))
        yield from _refs(step.with_, (*at, "with"), params, earlier)
        comp = step.compensate
        if not isinstance(comp, str):
            if comp.action not in ACTIONS:
                yield (*at, "compensate", "action"), f"unknown action type {comp.action!r}"
            else:
                yield from _args(ACTIONS[comp.action].Args, comp.with_, (*at, "compensate", "with"))
            yield from _refs(comp.with_, (*at, "compensate", "with"), params, earlier | {step.id})
        earlier.add(step.id)
    for name, value in runbook.outputs.items():
        yield from _refs(value, ("outputs", name), params, earlier)


def _args(model: Any, given: dict[str, Any], at: Path_) -> Iterable[tuple[Path_, str]]:
    fields = {(field.alias or name): field for name, field in model.model_fields.items()}
    for name in given:
        if name not in fields:
            yield (*at, name), f"unknown argument (this action takes: {', '.join(fields)})"
    for name, field in fields.items():
        if field.is_required() and name not in given:
            yield at, f"missing argument {name!r}"


def _refs(value: Any, at: Path_, params: set[str], steps: set[str]) -> Iterable[tuple[Path_, str]]:
    for ref in references(value):
        root, _, rest = ref.partition(".")
        head = rest.split(".", 1)[0]
        if root not in ROOTS:
            yield at, f"{{{{ {ref} }}}}: references start with params., steps. or run."
        elif root == "params" and head not in params:
            yield at, f"{{{{ {ref} }}}}: no parameter {head!r}"
        elif root == "steps" and head not in steps:
            yield at, f"{{{{ {ref} }}}}: no earlier step {head!r}"
        elif root == "run" and head not in ("id", "operator", "environment"):
            yield at, f"{{{{ {ref} }}}}: run has id, operator and environment"


def yaml_files(dirs: Iterable[Path]) -> list[Path]:
    """The ``.yaml``/``.yml`` files of each folder (runbooks, drill scenarios), sorted."""
    files: list[Path] = []
    for folder in dirs:
        if folder.is_dir():
            files.extend(sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")))
    return files


runbook_files = yaml_files


def find_yaml(name_or_path: str, dirs: Iterable[Path]) -> Path | None:
    """A YAML file given as a path, or named by its stem in one of ``dirs``."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    return next((p for p in yaml_files(dirs) if p.stem == name_or_path), None)


def find_runbook(name_or_path: str, dirs: Iterable[Path]) -> LoadedRunbook:
    """A runbook by name (from the runbook dirs) or by file path."""
    dirs = list(dirs)
    path = find_yaml(name_or_path, dirs)
    if path is not None:
        return load_runbook(path)
    from console.errors import RunbookError

    where = ", ".join(str(d) for d in dirs)
    raise RunbookError(f"no runbook named {name_or_path!r} in {where} (see `runbook list`)")
