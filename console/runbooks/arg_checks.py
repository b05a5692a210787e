"""Action arguments checked against their action's schema, with one set of messages: every
argument when a step is planned, and, when a file is validated, the arguments written as
literal values (without a template reference), since those are known without a backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from console.runbooks.template import references

if TYPE_CHECKING:
    from console.config import Settings

FieldPath = tuple[str | int, ...]


def arg_context(settings: Settings | None) -> dict[str, Any] | None:
    """What argument validators check against the settings (http.request's allowed hosts);
    None when there are no settings at hand (the check then waits for the plan)."""
    if settings is None:
        return None
    return {"allowed_hosts": list(settings.http_action.allowed_hosts)}


def messages(exc: ValidationError) -> list[tuple[FieldPath, str]]:
    """Each error's field path and reason, without pydantic's "Value error, " prefix."""
    found = []
    for error in exc.errors():
        reason = str(error["msg"]).removeprefix("Value error, ")
        found.append((tuple(error["loc"]), reason))
    return found


def literal_problems(
    model: type[BaseModel], given: Mapping[str, Any], context: dict[str, Any] | None
) -> list[tuple[FieldPath, str]]:
    """Problems with the arguments of ``given`` that hold no template reference (their values
    are the ones the step will get). Missing and unknown arguments are reported elsewhere."""
    literal = {name: value for name, value in given.items() if not _templated(value)}
    try:
        model.model_validate(literal, context=context)
    except ValidationError as exc:
        return [
            (loc, reason)
            for (loc, reason), error in zip(messages(exc), exc.errors(), strict=True)
            if loc
            and loc[0] in literal
            and not (len(loc) == 1 and error["type"] == "extra_forbidden")
        ]
    return []


def _templated(value: Any) -> bool:
    return next(iter(references(value)), None) is not None
