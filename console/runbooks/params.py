"""Turn ``--param key=value`` strings into typed, checked values."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote, quote_plus

from console.durations import format_duration, parse_duration
from console.errors import ParameterError
from console.runbooks.model import ParameterSpec, Runbook
from console.runbooks.patterns import full_match
from console.urls import redact_urls_in

REDACTED = "***"


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["client=acme", "ttl=30m"]`` -> dict; the value may contain ``=``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ParameterError(f"--param {item[:40]!r}: expected NAME=VALUE")
        if name in out:
            raise ParameterError(f"--param {name} given twice")
        out[name] = value
    return out


def resolve(runbook: Runbook, given: dict[str, Any]) -> dict[str, Any]:
    """Check every given value against its spec, apply defaults, report all problems at once."""
    problems: list[str] = []
    unknown = sorted(set(given) - set(runbook.parameters))
    for name in unknown:
        known = ", ".join(sorted(runbook.parameters)) or "none"
        problems.append(f"unknown parameter {name!r} (this runbook takes: {known})")
    values: dict[str, Any] = {}
    for name, spec in runbook.parameters.items():
        if name in given:
            raw = given[name]
        elif spec.default is not None:
            raw = spec.default
        elif spec.required:
            problems.append(f"parameter {name!r} is required ({spec.type})")
            continue
        else:
            values[name] = None
            continue
        try:
            values[name] = coerce(spec, raw)
        except ValueError as exc:
            problems.append(f"parameter {name!r}: {exc}")
    if problems:
        raise ParameterError("; ".join(problems))
    return values


def coerce(spec: ParameterSpec, raw: Any) -> Any:
    if spec.type in ("string", "secret", "enum"):
        return _string(spec, raw)
    if spec.type == "int":
        return _int(spec, raw)
    if spec.type == "duration":
        return _duration(spec, raw)
    if spec.type == "bool":
        return _bool(raw)
    raise ValueError(f"unknown type {spec.type}")  # pragma: no cover - schema forbids it


def _string(spec: ParameterSpec, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected text, got {type(raw).__name__}")
    shown = REDACTED if spec.secret else repr(raw[:40])
    if len(raw) > spec.max_length:
        raise ValueError(f"{len(raw)} characters, at most {spec.max_length} allowed")
    if spec.min_length is not None and len(raw) < spec.min_length:
        raise ValueError(f"at least {spec.min_length} characters needed")
    if any(not ch.isprintable() for ch in raw):
        raise ValueError(f"{shown} contains control characters (newline, escape, ...)")
    if spec.type == "enum" and spec.values is not None and raw not in spec.values:
        raise ValueError(f"{shown} is not one of {', '.join(spec.values)}")
    if spec.pattern is not None and not full_match(spec.pattern, raw):
        raise ValueError(f"{shown} does not match {spec.pattern}")
    return raw


def _int(spec: ParameterSpec, raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and re.fullmatch(r"[+-]?\d{1,18}", raw.strip()):
        value = int(raw)
    else:
        raise ValueError(f"{str(raw)[:40]!r} is not an integer")
    if spec.min is not None and value < spec.min:
        raise ValueError(f"{value} is below the minimum {spec.min}")
    if spec.max is not None and value > spec.max:
        raise ValueError(f"{value} is above the maximum {spec.max}")
    return value


def _duration(spec: ParameterSpec, raw: Any) -> timedelta:
    value = raw if isinstance(raw, timedelta) else parse_duration(str(raw))
    if spec.min is not None and value < parse_duration(str(spec.min)):
        raise ValueError(f"{raw} is shorter than the minimum {spec.min}")
    if spec.max is not None and value > parse_duration(str(spec.max)):
        raise ValueError(f"{raw} is longer than the maximum {spec.max}")
    return value


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"{str(raw)[:40]!r} is not true or false")


def secret_values(runbook: Runbook, values: dict[str, Any]) -> list[str]:
    return [
        str(values[name])
        for name, spec in runbook.parameters.items()
        if spec.secret and values.get(name)
    ]


class Redactor:
    """Replaces secrets, in every form a template can write them, inside (nested) values;
    ``text`` also cuts the credentials out of URLs."""

    def __init__(self, secrets: list[str]) -> None:
        forms = set()
        for secret in secrets:
            forms.update({secret, quote(secret, safe=""), quote_plus(secret)})
        # Longest first, so an encoded form is not half-replaced by a shorter one.
        self._forms = sorted((f for f in forms if f), key=len, reverse=True)

    def __call__(self, value: Any) -> Any:
        if not self._forms:
            return value
        if isinstance(value, str):
            for form in self._forms:
                value = value.replace(form, REDACTED)
            return value
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self(item) for item in value]
        return value

    def text(self, value: object) -> str:
        """``value`` as text a person may see: secrets redacted, and the credentials of any
        URL in it cut out."""
        return redact_urls_in(str(self(str(value))))


def redact(value: Any, secrets: list[str]) -> Any:
    """Replace every occurrence of a secret inside (nested) values."""
    return Redactor(secrets)(value)


def public_params(runbook: Runbook, values: dict[str, Any]) -> dict[str, Any]:
    """Parameters fit for the audit log, the run state and the screen."""
    return {
        name: (REDACTED if runbook.parameters[name].secret and value is not None else value)
        for name, value in values.items()
    }


def jsonable(value: Any) -> Any:
    """JSON-ready values, durations written as people write them (30m, not PT30M)."""
    from pydantic_core import to_jsonable_python

    def walk(item: Any) -> Any:
        if isinstance(item, timedelta):
            return format_duration(item)
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return to_jsonable_python(walk(value))
