"""Sampled 8x8 inputs drawn in shade characters (the Samples view, replay's detail)."""

from __future__ import annotations

import math
from collections.abc import Sequence

SHADES = " ░▒▓█"
"""Pixel shades from 0 (blank) to 16 (full)."""


def digit_rows(values: Sequence[float], side: int = 8) -> list[str]:
    """``side`` lines of shade characters drawing a ``side`` x ``side`` image of pixels in
    0..16 (clipped), two characters per pixel so it looks square in a terminal."""
    if side < 1:
        raise ValueError(f"side must be at least 1, not {side}")
    if len(values) != side * side:
        raise ValueError(f"expected {side * side} values ({side}x{side}), got {len(values)}")
    top = len(SHADES) - 1
    rows = []
    for r in range(side):
        chars = []
        for value in values[r * side : (r + 1) * side]:
            v = float(value)
            if math.isnan(v):
                raise ValueError("a pixel value is NaN")
            level = int(min(max(v, 0.0), 16.0) / 16.0 * top + 0.5)
            chars.append(SHADES[level] * 2)
        rows.append("".join(chars))
    return rows
