"""Tiny text plots for table cells: a sparkline of a series, scaled to a common maximum so the
rows of a heatmap compare."""

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
