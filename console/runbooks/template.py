"""``{{ params.client }}``-style references in runbook arguments.

Deliberately tiny: dotted lookups and one filter (``| url``). No expressions, no code, so a
runbook can never run anything it does not name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from console.durations import format_duration

REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\s*(\|\s*url\s*)?\}\}")
ROOTS = ("params", "steps", "run")


class TemplateError(ValueError):
    pass


def references(value: Any) -> Iterator[str]:
    """Every dotted reference inside a (nested) argument value."""
    if isinstance(value, str):
        for match in REF.finditer(value):
            yield match.group(1)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """Substitute references. A string that is one reference keeps the value's type."""
    if isinstance(value, str):
        whole = REF.fullmatch(value.strip())
        if whole and not whole.group(2):
            return lookup(scope, whole.group(1))
        return REF.sub(lambda m: _text(lookup(scope, m.group(1)), bool(m.group(2))), value)
    if isinstance(value, Mapping):
        return {key: render(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, scope) for item in value]
    return value


def lookup(scope: Mapping[str, Any], dotted: str) -> Any:
    current: Any = scope
    for part in dotted.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif hasattr(current, "model_dump"):
            dumped = current.model_dump()
            if part not in dumped:
                raise TemplateError(f"{{{{ {dotted} }}}}: no {part!r}")
            current = dumped[part]
        else:
            raise TemplateError(f"{{{{ {dotted} }}}}: no {part!r}")
    return current


def _text(value: Any, url: bool) -> str:
    if isinstance(value, timedelta):
        text = format_duration(value)
    elif isinstance(value, datetime):
        text = value.isoformat()
    elif value is None:
        text = ""
    else:
        text = str(value)
    return quote(text, safe="") if url else text
