"""Parameter patterns, matched by RE2: linear in the value's length whatever the pattern.

Python's ``re`` backtracks: ``^(a+)+$`` against 31 characters takes tens of seconds of CPU, so
a runbook's pattern could hang the console on a value an operator (or a drill) pastes. RE2 has
no backtracking; it refuses what it cannot match in linear time (backreferences, lookaround),
which a runbook then learns at validation.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type hints


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own line on stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"pattern is not a valid RE2 expression: {reason}") from None


def check_pattern(pattern: str) -> None:
    """Raises ValueError (with RE2's reason) if ``pattern`` cannot be used."""
    _compiled(pattern)


def full_match(pattern: str, value: str) -> bool:
    return _compiled(pattern).fullmatch(value) is not None
