"""YAML files read safely into pydantic models, every problem as ``file:line: field: reason``.

``yaml.safe_load`` semantics only (no Python tags), except that a key given twice in one
mapping is refused (``safe_load`` would silently keep the last value: a runbook's second
``ttl:`` would win unseen); bounded in bytes, aliases, nodes (alias expansion included) and
depth before anything is built, so an alias bomb or a deeply nested file is refused early. Runbooks,
drill scenarios and any other YAML the console reads go through here::

    loaded = load_model(path, Scenario, error=DrillScenarioError)
    loaded.model                                   # the validated Scenario
    loaded.lines.problem(("attack", "kind"), why)  # "path:7: attack.kind: why"

Every failure is raised as ``error(problems)``: the caller's ``ConsoleError`` subclass that
carries a list of one-line problems (``RunbookValidationError``, ``DrillScenarioError``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from console.errors import ConsoleError

FieldPath = tuple[str | int, ...]
ProblemsError = Callable[[list[str]], ConsoleError]
"""Builds the error raised for a file's problems (one line each)."""
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 256 * 1024
    max_nodes: int = 20_000
    """Nodes visited with every alias expanded: what building the document would cost."""
    max_depth: int = 32
    max_aliases: int = 64


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class LineIndex:
    """Where each field path of a document starts in its file."""

    path: Path
    lines: Mapping[FieldPath, int] = field(default_factory=dict)

    def line_of(self, loc: Iterable[Any]) -> int:
        """The line of ``loc``, or of its nearest ancestor present in the file (1 if none)."""
        loc = tuple(loc)
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return 1

    def problem(self, loc: Iterable[Any], reason: str) -> str:
        """``file:line: field.path: reason``."""
        loc = tuple(loc)
        return f"{self.path}:{self.line_of(loc)}: {dotted(loc)}: {reason}"


@dataclass(frozen=True)
class YamlDocument:
    """A file's parsed document (plain dicts, lists and scalars) and where its fields are."""

    data: Any
    lines: LineIndex
    sha256: str
    """Of the file's bytes, as read."""


@dataclass(frozen=True)
class LoadedModel(Generic[ModelT]):
    model: ModelT
    lines: LineIndex
    sha256: str

    @property
    def path(self) -> Path:
        return self.lines.path


def load_model(
    path: Path, model: type[ModelT], *, error: ProblemsError, limits: Limits = DEFAULT_LIMITS
) -> LoadedModel[ModelT]:
    """Read ``path`` and validate it as ``model``; raises ``error([...])`` listing every
    problem."""
    return parse_model(
        read_bytes(path, error=error, limits=limits), path, model, error=error, limits=limits
    )


def parse_model(
    raw: bytes | str,
    path: Path,
    model: type[ModelT],
    *,
    error: ProblemsError,
    limits: Limits = DEFAULT_LIMITS,
) -> LoadedModel[ModelT]:
    """``raw`` (the content of ``path``, which names it in errors) validated as ``model``."""
    document = parse_document(raw, path, error=error, limits=limits)
    if not isinstance(document.data, dict):
        raise error([f"{path}:1: {_mapping_hint(model)}"])
    try:
        validated = model.model_validate(document.data)
    except ValidationError as exc:
        raise error([document.lines.problem(e["loc"], e["msg"]) for e in exc.errors()]) from None
    return LoadedModel(validated, document.lines, document.sha256)


def read_bytes(path: Path, *, error: ProblemsError, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The file's bytes; a file larger than ``limits.max_bytes`` is refused without reading
    it all."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limits.max_bytes + 1)
            if len(raw) > limits.max_bytes:
                size = max(len(raw), os.fstat(handle.fileno()).st_size)
                raise error([f"{path}: {size} bytes, larger than {limits.max_bytes}"])
    except OSError as exc:
        raise error([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return raw


def parse_document(
    raw: bytes | str, path: Path, *, error: ProblemsError, limits: Limits = DEFAULT_LIMITS
) -> YamlDocument:
    """The single YAML document in ``raw``, bounded by ``limits``, with its line index."""
    data = raw.encode("utf-8", errors="surrogatepass") if isinstance(raw, str) else raw
    if len(data) > limits.max_bytes:
        raise error([f"{path}: {len(data)} bytes, larger than {limits.max_bytes}"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error([f"{path}: not UTF-8 (byte {exc.start})"]) from None
    loader = _BoundedSafeLoader(text, limits)
    try:
        node = loader.get_single_node()
        if node is None:
            raise error([f"{path}:1: the file is empty"])
        lines: dict[FieldPath, int] = {}
        indexer = _Indexer(lines, limits)
        indexer.visit(node, (), 0, record=True)
        if indexer.duplicates:
            raise error([f"{path}:{line}: {why}" for line, why in sorted(indexer.duplicates)])
        document = loader.construct_document(node)
    except _LimitExceeded as exc:
        raise error([f"{path}:{exc.line}: rejected: {exc}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        reason = exc.problem or exc.context or "invalid YAML"
        raise error([f"{path}:{line}: invalid YAML: {reason}"]) from None
    except yaml.YAMLError as exc:
        raise error([f"{path}: invalid YAML: {exc}"]) from None
    except RecursionError:
        raise error([f"{path}: rejected: nested too deeply"]) from None
    finally:
        loader.dispose()
    return YamlDocument(document, LineIndex(path, lines), hashlib.sha256(data).hexdigest())


def dotted(loc: Iterable[Any]) -> str:
    """``steps.0.with`` for ``("steps", 0, "with")``; ``(top)`` for the document itself."""
    return ".".join(str(part) for part in loc) or "(top)"


def yaml_files(dirs: Iterable[Path]) -> list[Path]:
    """The ``.yaml``/``.yml`` files of each folder, sorted (missing folders are skipped)."""
    files: list[Path] = []
    for folder in dirs:
        if folder.is_dir():
            files.extend(sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")))
    return files


def layered_yaml_files(dirs: Iterable[Path]) -> list[Path]:
    """The YAML files of ``dirs`` by stem, a later folder's file replacing an earlier one of the
    same stem (a user's runbook over a shipped one), sorted by stem. The same file reached
    twice (a folder listed again, a link to it) keeps its first place."""
    chosen: dict[str, Path] = {}
    seen: set[Path] = set()
    for path in yaml_files(dirs):
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            chosen[path.stem] = path
    return [chosen[stem] for stem in sorted(chosen)]


def find_yaml(name_or_path: str, dirs: Iterable[Path]) -> Path | None:
    """A YAML file given as a path, or named by its stem in ``dirs`` (the last folder that has
    it: see ``layered_yaml_files``)."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    return next((p for p in layered_yaml_files(dirs) if p.stem == name_or_path), None)


def _mapping_hint(model: type[BaseModel]) -> str:
    required = [name for name, info in model.model_fields.items() if info.is_required()]
    return f"a {model.__name__.lower()} is a mapping ({', '.join([*required, '...'])})"


class _LimitExceeded(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader that bounds depth and counts aliases while composing, so bombs stop before
    any node is built."""

    def __init__(self, stream: str, limits: Limits) -> None:
        super().__init__(stream)
        self.limits = limits
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # The composer recurses once per nesting level: stop before Python's stack does.
        self.depth += 1
        try:
            if self.depth > self.limits.max_depth:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _LimitExceeded(
                    f"nested deeper than {self.limits.max_depth} levels", mark.line + 1
                )
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > self.limits.max_aliases:
                    event = self.peek_event()  # type: ignore[no-untyped-call]
                    raise _LimitExceeded(
                        f"more than {self.limits.max_aliases} YAML aliases",
                        event.start_mark.line + 1,
                    )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


@dataclass
class _Indexer:
    """Maps each field path to its line, bounding the nodes visited (aliases expanded), and
    finds the keys a mapping gives twice."""

    lines: dict[FieldPath, int]
    limits: Limits
    visited: int = 0
    duplicates: set[tuple[int, str]] = field(default_factory=set)
    """(line, reason) of each repeated key (a set: an alias visits its mapping again)."""

    def visit(self, node: yaml.Node, at: FieldPath, depth: int, *, record: bool) -> None:
        self.visited += 1
        line = node.start_mark.line + 1
        if self.visited > self.limits.max_nodes:
            raise _LimitExceeded(
                f"more than {self.limits.max_nodes} YAML nodes (alias expansion?)", line
            )
        if depth > self.limits.max_depth:
            raise _LimitExceeded(f"nested deeper than {self.limits.max_depth} levels", line)
        if record:
            self.lines.setdefault(at, line)
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for i, (key_node, value_node) in enumerate(node.value):
                key = _key_name(key_node, i)
                key_line = key_node.start_mark.line + 1
                identity = _key_identity(key_node)
                if identity is not None and identity in first:
                    self.duplicates.add(
                        (key_line, f"duplicate key {key!r} (first at line {first[identity]})")
                    )
                    continue
                if identity is not None:
                    first[identity] = key_line
                if record:
                    self.lines.setdefault((*at, key), key_line)
                self.visit(value_node, (*at, key), depth + 1, record=record)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.visit(item, (*at, i), depth + 1, record=record)


def _key_identity(node: yaml.Node) -> tuple[str, str] | None:
    """What makes two keys the same key (``a`` and ``"a"`` are); None for keys that cannot
    repeat: a merge key (``<<``, whose keys yield to the mapping's own) or a key that is not a
    scalar (construction refuses it anyway)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:merge":
        return None
    return (node.tag, node.value)


def _key_name(node: yaml.Node, index: int) -> str:
    # A key that is not a scalar cannot be built into a dict key anyway (construction fails).
    return node.value if isinstance(node, yaml.ScalarNode) else f"<key {index}>"


__all__ = [
    "DEFAULT_LIMITS",
    "FieldPath",
    "Limits",
    "LineIndex",
    "LoadedModel",
    "ProblemsError",
    "YamlDocument",
    "dotted",
    "find_yaml",
    "load_model",
    "parse_document",
    "parse_model",
    "read_bytes",
    "yaml_files",
]
