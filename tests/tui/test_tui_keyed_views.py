"""Every converted view updates its tables by row key (console/tui/widgets/keyed_table.py): a
refresh of unchanged data rewrites no row and leaves the cursor on its row, the `/` filter
removes rows and brings them back. On the recorded incident (no lab needed), whose data
does not change between refreshes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.widgets import DataTable
from tui_support import until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "snapshot_apps"))

from recorded import recorded_app  # noqa: E402

SIZE = (140, 42)
TABLES = [
    ("alerts", "#alerts-table"),
    ("models", "#models-table"),
    ("models", "#versions-table"),
    ("mitigations", "#blocks-table"),
    ("mitigations", "#registry-table"),
    ("audit", "#audit-table"),
    ("samples", "#samples-table"),
    ("runbooks", "#runbooks-table"),
]


def _rows(table: DataTable[Text]) -> list[tuple[str | None, list[Any]]]:
    return [(row.key.value, table.get_row(row.key)) for row in table.ordered_rows]


@pytest.mark.parametrize(("view", "table_id"), TABLES)
async def test_a_refresh_of_the_same_data_rewrites_no_row_and_keeps_the_cursor(
    tmp_path: Path, view: str, table_id: str
) -> None:
    app = recorded_app(tmp_path, view)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.view(view)
        await until(pilot, lambda: screen.refreshes >= 1, 10, f"{view} drawn")
        table = screen.query_one(table_id, DataTable)
        before = _rows(table)
        assert before, f"the recording shows rows in {table_id}"
        last = len(before) - 1
        table.move_cursor(row=last)
        await pilot.pause()
        screen.action_refresh_now()
        await until(pilot, lambda: screen.refreshes >= 2, 10, f"{view} refreshed")
        after = _rows(table)
        assert [key for key, _ in after] == [key for key, _ in before]
        for (_, old), (_, new) in zip(before, after, strict=True):
            # the very cell objects of the first draw: nothing was rewritten
            assert all(a is b for a, b in zip(old, new, strict=True))
        assert table.cursor_row == last
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == before[-1][0]


async def test_the_filter_removes_rows_by_key_and_brings_them_back(tmp_path: Path) -> None:
    app = recorded_app(tmp_path, "runbooks")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.view("runbooks")
        await until(pilot, lambda: screen.refreshes >= 1, 10, "runbooks drawn")
        table = screen.query_one("#runbooks-table", DataTable)
        keys = [row.key.value for row in table.ordered_rows]
        assert len(keys) > 2
        kept = next(k for k in keys if k and Path(k).stem == "block-client")
        first = table.get_row(kept)
        screen.apply_filter("block-client")
        await pilot.pause()
        shown = [row.key.value for row in table.ordered_rows]
        assert kept in shown and len(shown) < len(keys)
        assert all(a is b for a, b in zip(first, table.get_row(kept), strict=True))
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value in shown
        screen.apply_filter("")
        await pilot.pause()
        assert [row.key.value for row in table.ordered_rows] == keys
