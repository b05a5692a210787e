"""Runbook files: found in the runbook folders, read with the bounded safe YAML loader
(``console.safe_yaml``), validated against the schema, then checked for what the schema
cannot see (action types and their arguments, template references). Every problem is reported
as ``file:line: field.path: reason``.

Argument values written as literals (no template) are checked here as the plan would check
them, with the same messages: a ``file://`` URL, a host outside ``http_action.allowed_hosts``
(when the settings are given), a ``qpm`` out of bounds, a block's ``ttl: 0s``. So are the
leases (``console.runbooks.leasing``) and each parameter's default."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.errors import RunbookError, RunbookValidationError
from console.runbooks.arg_checks import arg_context, literal_problems
from console.runbooks.leasing import file_problems
from console.runbooks.model import Runbook
from console.runbooks.params import coerce
from console.runbooks.template import ROOTS, references
from console.safe_yaml import (
    FieldPath,
    LoadedModel,
    find_yaml,
    layered_yaml_files,
    parse_model,
    read_bytes,
)

if TYPE_CHECKING:
    from console.config import Settings

runbook_files = layered_yaml_files
"""The runbooks of the runbook folders by name, a later folder's overriding an earlier one's."""


@dataclass(frozen=True)
class LoadedRunbook:
    runbook: Runbook
    path: Path
    sha256: str


def load_runbook(path: Path, settings: Settings | None = None) -> LoadedRunbook:
    """Parse and validate one file. Raises RunbookValidationError listing every problem.
    With ``settings``, literal values are also checked against them (allowed hosts)."""
    return parse_runbook(read_bytes(path, error=RunbookValidationError), path, settings)


def parse_runbook(raw: bytes, path: Path, settings: Settings | None = None) -> LoadedRunbook:
    loaded: LoadedModel[Runbook] = parse_model(raw, path, Runbook, error=RunbookValidationError)
    context = arg_context(settings)
    problems = [loaded.lines.problem(loc, msg) for loc, msg in _semantics(loaded.model, context)]
    if problems:
        raise RunbookValidationError(problems)
    return LoadedRunbook(runbook=loaded.model, path=path, sha256=loaded.sha256)


def runbook_source(path: Path) -> str:
    """Where a runbook comes from: ``shipped``, ``user`` (``$XDG_CONFIG_HOME/aml-console/
    runbooks``) or its folder (a context's runbook dir, or a path given by hand)."""
    from console import locations, shipped

    folder = path.parent.resolve()
    if folder == shipped.runbooks_dir().resolve():
        return "shipped"
    if folder == locations.user_runbooks_dir().resolve():
        return "user"
    return str(path.parent)


def find_runbook(
    name_or_path: str, dirs: Iterable[Path], settings: Settings | None = None
) -> LoadedRunbook:
    """A runbook by name (from the runbook dirs) or by file path."""
    dirs = list(dirs)
    path = find_yaml(name_or_path, dirs)
    if path is not None:
        return load_runbook(path, settings)
    where = ", ".join(str(d) for d in dirs)
    raise RunbookError(f"no runbook named {name_or_path!r} in {where} (see `runbook list`)")


def _semantics(runbook: Runbook, context: dict[str, Any] | None) -> Iterator[tuple[FieldPath, str]]:
    """What the schema alone cannot see: actions, their arguments and literal values,
    references, leases, defaults."""
    from console.runbooks.actions import ACTIONS, CHECKS

    params = set(runbook.parameters)
    yield from _defaults(runbook)
    yield from _refs(runbook.target, ("target",), params, set())
    for i, pre in enumerate(runbook.preconditions):
        at: FieldPath = ("preconditions", i)
        if pre.check not in CHECKS:
            yield (*at, "check"), f"unknown check {pre.check!r} (known: {', '.join(CHECKS)})"
        else:
            yield from _args(CHECKS[pre.check].Args, pre.with_, (*at, "with"), context)
        yield from _refs(pre.with_, (*at, "with"), params, set())
    earlier: set[str] = set()
    for i, step in enumerate(runbook.steps):
        at = ("steps", i)
        if step.action not in ACTIONS:
            known = ", ".join(sorted(ACTIONS))
            yield (*at, "action"), f"unknown action type {step.action!r} (known: {known})"
        else:
            yield from _args(ACTIONS[step.action].Args, step.with_, (*at, "with"), context)
        yield from _refs(step.with_, (*at, "with"), params, earlier)
        comp = step.compensate
        if not isinstance(comp, str):
            if comp.action not in ACTIONS:
                yield (*at, "compensate", "action"), f"unknown action type {comp.action!r}"
            else:
                comp_at: FieldPath = (*at, "compensate", "with")
                yield from _args(ACTIONS[comp.action].Args, comp.with_, comp_at, context)
            yield from _refs(comp.with_, (*at, "compensate", "with"), params, earlier | {step.id})
        earlier.add(step.id)
    for name, value in runbook.outputs.items():
        yield from _refs(value, ("outputs", name), params, earlier)
    yield from file_problems(runbook)


def _defaults(runbook: Runbook) -> Iterator[tuple[FieldPath, str]]:
    for name, spec in runbook.parameters.items():
        if spec.default is not None:
            try:
                coerce(spec, spec.default)
            except ValueError as exc:
                yield ("parameters", name, "default"), str(exc)


def _args(
    model: Any, given: dict[str, Any], at: FieldPath, context: dict[str, Any] | None
) -> Iterable[tuple[FieldPath, str]]:
    fields = {(field.alias or name): field for name, field in model.model_fields.items()}
    for name in given:
        if name not in fields:
            yield (*at, name), f"unknown argument (this action takes: {', '.join(fields)})"
    for name, field in fields.items():
        if field.is_required() and name not in given:
            yield at, f"missing argument {name!r}"
    for loc, reason in literal_problems(model, given, context):
        yield (*at, *loc), reason


def _refs(
    value: Any, at: FieldPath, params: set[str], steps: set[str]
) -> Iterable[tuple[FieldPath, str]]:
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
