"""Tiny text plots for table cells: a sparkline of a series, and a heatmap row (colour and
block height), both scaled to a common maximum so the rows compare."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

BLOCKS = " ▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], top: float | None = None, style: str = "cyan") -> Text:
    peak = top if top is not None else max(values, default=0.0)
    if peak <= 0:
        return Text(BLOCKS[0] * len(values), style="dim")
    scale = len(BLOCKS) - 1
    chars = [BLOCKS[min(scale, max(0, round(v / peak * scale)))] for v in values]
    return Text("".join(chars), style=style)


HEAT = ("grey23", "dark_blue", "blue", "dark_cyan", "green", "yellow", "dark_orange", "red")
"""Cold to hot: a heatmap cell's colour by its share of the heatmap's maximum."""


def heat_strip(values: Sequence[float], top: float) -> Text:
    """A row of a heatmap: one cell a time step, its colour (and block height, for terminals
    without colour) by the value's share of ``top``, the maximum over every row."""
    text = Text()
    for value in values:
        share = 0.0 if top <= 0 else min(1.0, max(0.0, value / top))
        # Any traffic at all gets at least the lowest block: a quiet client is not an idle one.
        block = BLOCKS[max(1, round(share * (len(BLOCKS) - 1)))] if value > 0 else "·"
        color = HEAT[min(len(HEAT) - 1, int(share * len(HEAT)))] if value > 0 else "grey23"
        text.append(block, style=color)
    return text
