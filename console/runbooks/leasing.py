"""What a run leases: its target and every resource its steps (and their compensations) change.

Checked twice, with the same rules: when a file is validated (on the templates, each parameter
standing for itself) and when a run is planned (on the values). A resource the target does not
cover is refused, so a runbook cannot lock ``incident:42`` and unblock a client someone else is
containing. What names a lease is written in clear (plan, audit log, run state, the Redis key),
so it can come from no secret parameter; and it must be known before the first step, when the
leases are taken, so it cannot come from an earlier step's result.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from console.errors import ParameterError
from console.runbooks.model import Runbook, StepSpec
from console.runbooks.resources import Resource, lease_names, uncovered
from console.runbooks.template import TemplateError, references, render

if TYPE_CHECKING:
    from console.runbooks.actions import Action
    from console.runbooks.params import Redactor

FieldPath = tuple[str | int, ...]
CLEAR = "it is written in clear: plan, audit log, run state and the lock's name"


def step_actions(spec: StepSpec) -> Iterator[tuple[FieldPath, Action[Any], dict[str, Any]]]:
    """The step's action and an explicit compensation's, with where their arguments are."""
    from console.runbooks.actions import ACTIONS

    if spec.action in ACTIONS:
        yield ("with",), ACTIONS[spec.action], spec.with_
    comp = spec.compensate
    if not isinstance(comp, str) and comp.action in ACTIONS:
        yield ("compensate", "with"), ACTIONS[comp.action], comp.with_


def file_problems(runbook: Runbook) -> Iterator[tuple[FieldPath, str]]:
    """Problems a runbook file has with its leases, found on its templates alone."""
    secrets = {name for name, spec in runbook.parameters.items() if spec.secret}
    for ref in references(runbook.target):
        if _secret(ref, secrets):
            reason = f"a secret parameter cannot be in the target ({CLEAR})"
            yield ("target",), f"{{{{ {ref} }}}}: {reason}"
    symbols = _symbols(runbook)
    targets = _render_all(runbook.targets, symbols)
    for i, spec in enumerate(runbook.steps):
        for where, action, given in step_actions(spec):
            at: FieldPath = ("steps", i, *where)
            bad = list(_bad_sources(action, given, secrets, at))
            yield from bad
            if bad or targets is None:
                continue
            try:
                rendered = render(_resource_args(action, given), symbols)
            except TemplateError:
                continue  # the reference itself is reported by the loader
            named_at = (*at, next(iter(rendered))) if rendered else at  # what names it
            for resource in uncovered(action.changes(rendered), targets):
                yield (
                    named_at,
                    (
                        f"changes {resource.key}, which the target ({', '.join(targets)}) does not "
                        "cover: name it in target (the run leases what it changes)"
                    ),
                )


def run_leases(
    runbook: Runbook, variables: Mapping[str, Any], redactor: Redactor
) -> tuple[list[str], list[str]]:
    """The run's targets and every lease it takes (sorted); ParameterError if a step changes
    what the targets do not cover, or a lease would name a secret."""
    targets = [str(_render(t, variables, "target", redactor)) for t in runbook.targets]
    resources: list[Resource] = []
    for spec in runbook.steps:
        for _, action, given in step_actions(spec):
            named = _resource_args(action, given)
            changed = action.changes(_render(named, variables, f"step {spec.id}", redactor))
            missing = uncovered(changed, targets)
            if missing:
                raise ParameterError(
                    redactor.text(
                        f"step {spec.id} changes {missing[0].key}, which the target "
                        f"({', '.join(targets)}) does not cover; nothing was changed"
                    )
                )
            resources.extend(changed)
    leases = lease_names(targets, resources)
    if any(redactor(name) != name for name in leases):
        raise ParameterError(
            f"the target or what a step changes would hold a secret parameter's value ({CLEAR}); "
            "nothing was changed"
        )
    return targets, leases


def _bad_sources(
    action: Action[Any], given: Mapping[str, Any], secrets: set[str], at: FieldPath
) -> Iterator[tuple[FieldPath, str]]:
    for name, value in _resource_args(action, given).items():
        for where, ref in _located_refs(value, (*at, name)):
            if ref.startswith("steps."):
                yield (
                    where,
                    (
                        f"{{{{ {ref} }}}}: what a step changes is leased before the first step, so "
                        "it cannot come from an earlier step's result"
                    ),
                )
            elif _secret(ref, secrets):
                yield (
                    where,
                    (
                        f"{{{{ {ref} }}}}: a secret parameter cannot name what a step changes "
                        f"(the run leases it, and {CLEAR})"
                    ),
                )


def _located_refs(value: Any, at: FieldPath) -> Iterator[tuple[FieldPath, str]]:
    """Each reference in a (nested) value, with the path of the string that holds it."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _located_refs(item, (*at, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _located_refs(item, (*at, i))
    else:
        for ref in references(value):
            yield at, ref


def _resource_args(action: Action[Any], given: Mapping[str, Any]) -> dict[str, Any]:
    return {name: given[name] for name in action.resource_args if name in given}


def _secret(ref: str, secrets: set[str]) -> bool:
    root, _, rest = ref.partition(".")
    return root == "params" and rest.split(".", 1)[0] in secrets


def _symbols(runbook: Runbook) -> dict[str, Any]:
    """A scope where each parameter (and run field) stands for itself: two templates that
    render to the same text name the same resource whatever the values."""
    return {
        "params": {name: f"{{{{params.{name}}}}}" for name in runbook.parameters},
        "run": {name: f"{{{{run.{name}}}}}" for name in ("id", "operator", "environment")},
        "steps": {},
    }


def _render_all(templates: list[str], scope: Mapping[str, Any]) -> list[str] | None:
    try:
        return [str(render(t, scope)) for t in templates]
    except TemplateError:
        return None


def _render(value: Any, variables: Mapping[str, Any], where: str, redactor: Redactor) -> Any:
    try:
        return render(value, variables)
    except TemplateError as exc:
        raise ParameterError(f"{where}: {redactor.text(exc)}") from None
