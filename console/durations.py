"""Durations as people write them: 90s, 30m, 1h30m, 7d."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w))+$")
MAX_SECONDS = 100 * 365 * 86400
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m``-style text. Raises ValueError with a readable reason."""
    raw = str(text).strip().lower()
    if len(raw) > 32 or not _WHOLE.fullmatch(raw):
        raise ValueError(f"{str(text)[:40]!r} is not a duration such as 90s, 30m, 1h30m or 7d")
    seconds = sum(int(n) * _UNIT_S[unit] for n, unit in _PART.findall(raw))
    if seconds > MAX_SECONDS:
        raise ValueError(f"{str(text)[:40]!r} is longer than 100 years")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _coerce(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_coerce)]
"""A timedelta that also accepts 30m-style text."""
