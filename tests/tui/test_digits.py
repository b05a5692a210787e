"""Sampled 8x8 inputs drawn in shade characters."""

from __future__ import annotations

import numpy as np
import pytest

from console.tui.digits import digit_rows


def test_digit_rows_draws_a_square_image_with_shades() -> None:
    values = [float(i % 17) for i in range(64)]
    rows = digit_rows(values)
    assert len(rows) == 8 and all(len(r) == 16 for r in rows)
    assert rows[0][:2] == "  "  # values[0] == 0
    assert rows[1][:2] == "▒▒"  # values[8] == 8
    assert rows[2][:2] == "██"  # values[16] == 16
    assert set("".join(rows)) <= set(" ░▒▓█")


def test_digit_rows_levels_and_clipping() -> None:
    pixels = [-5.0, 0.0, 2.0, 4.0, 8.0, 12.0, 16.0, 99.0]
    (row,) = digit_rows(pixels[:1], side=1)
    assert row == "  "
    grid = digit_rows(pixels * 8)
    assert grid[0] == "".join(c * 2 for c in "  ░░▒▓██")
    assert grid == [grid[0]] * 8


def test_digit_rows_rejects_wrong_sizes_and_nan() -> None:
    with pytest.raises(ValueError, match="expected 64 values"):
        digit_rows([0.0] * 63)
    with pytest.raises(ValueError, match="expected 16 values"):
        digit_rows([0.0] * 64, side=4)
    with pytest.raises(ValueError, match="NaN"):
        digit_rows([float("nan")] + [0.0] * 63)
    assert len(digit_rows(np.zeros(16), side=4)) == 4
