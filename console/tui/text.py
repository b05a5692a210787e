"""Text from systems an attacker can write into (client ids, alert labels, model names, trace
attributes), made safe for the screen: never read as Rich markup, and with every control
character (ESC of ANSI and OSC sequences, BEL, C1 controls) replaced, so nothing reaches the
terminal as an escape sequence."""

from __future__ import annotations

import math

from rich.text import Text

REPLACEMENT = "\N{REPLACEMENT CHARACTER}"


def printable(value: object, limit: int = 500) -> str:
    """``value`` on one line: newlines and tabs become spaces (a label must not fake a row),
    every other control character becomes U+FFFD."""
    raw = "" if value is None else str(value).strip()
    cleaned = "".join(
        ch if ch.isprintable() or ch == " " else " " if ch in "\n\r\t" else REPLACEMENT
        for ch in raw
    )
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def plain(value: object, style: str = "", limit: int = 500) -> Text:
    """A Text that shows ``value`` literally (Text, unlike a str cell, parses no markup)."""
    return Text(printable(value, limit), style=style, no_wrap=True, overflow="ellipsis")


def number(value: float | None, fmt: str = "{:.2f}", style: str = "") -> Text:
    if value is None or math.isnan(value):
        return Text("–", style="dim")
    return Text(fmt.format(value), style=style, justify="right")


def age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
