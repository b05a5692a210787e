"""sync_rows: a refresh rewrites only what changed and keeps the cursor on its row."""

from __future__ import annotations

from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from console.tui.widgets.keyed_table import sync_rows


class Counting(DataTable[Text]):
    """A DataTable that records the writes sync_rows makes."""

    def __init__(self) -> None:
        super().__init__(cursor_type="row")
        self.calls: list[tuple[str, str]] = []

    def update_cell(self, row_key: Any, column_key: Any, value: Any, **kw: Any) -> None:
        self.calls.append(("update", str(getattr(row_key, "value", row_key))))
        super().update_cell(row_key, column_key, value, **kw)

    def add_row(self, *cells: Any, **kw: Any) -> Any:
        self.calls.append(("add", str(kw.get("key"))))
        return super().add_row(*cells, **kw)

    def remove_row(self, row_key: Any) -> None:
        self.calls.append(("remove", str(getattr(row_key, "value", row_key))))
        super().remove_row(row_key)

    def clear(self, columns: bool = False) -> Any:
        raise AssertionError("sync_rows must never clear the table")


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        table = Counting()
        table.add_columns("name", "state")
        yield table


def rows(*pairs: tuple[str, str]) -> list[tuple[str, list[Text]]]:
    return [(key, [Text(key), Text(state)]) for key, state in pairs]


def shown(table: DataTable[Text]) -> list[tuple[str | None, list[str]]]:
    return [
        (row.key.value, [str(cell) for cell in table.get_row(row.key)])
        for row in table.ordered_rows
    ]


async def test_unchanged_rows_are_not_rewritten_and_changed_cells_only_are() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(Counting)
        assert sync_rows(table, rows(("a", "up"), ("b", "up"), ("c", "up")))
        first_b = table.get_row("b")
        table.calls.clear()

        assert not sync_rows(table, rows(("a", "up"), ("b", "up"), ("c", "up")))
        assert table.calls == []

        assert sync_rows(table, rows(("a", "up"), ("b", "down"), ("c", "up")))
        assert table.calls == [("update", "b")]
        assert table.get_row("b")[0] is first_b[0]  # the unchanged name cell is the old object
        assert shown(table)[1] == ("b", ["b", "down"])
        await pilot.pause()


async def test_a_style_only_change_is_a_change() -> None:
    app = TableApp()
    async with app.run_test():
        table = app.query_one(Counting)
        sync_rows(table, [("a", [Text("a"), Text("up", style="green")])])
        table.calls.clear()
        assert sync_rows(table, [("a", [Text("a"), Text("up", style="red")])])
        assert table.calls == [("update", "a")]
        assert table.get_row("a")[1].style == "red"


async def test_rows_are_added_and_removed_by_key() -> None:
    app = TableApp()
    async with app.run_test():
        table = app.query_one(Counting)
        sync_rows(table, rows(("a", "up"), ("b", "up"), ("c", "up")))
        table.calls.clear()
        assert sync_rows(table, rows(("a", "up"), ("c", "up"), ("d", "new")))
        assert sorted(table.calls) == [("add", "d"), ("remove", "b")]
        assert shown(table) == [("a", ["a", "up"]), ("c", ["c", "up"]), ("d", ["d", "new"])]

        assert sync_rows(table, [])
        assert table.row_count == 0


async def test_a_reorder_happens_only_when_the_order_changed_and_keeps_the_cursor() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(Counting)
        sync_rows(table, rows(("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")))
        table.move_cursor(row=1)  # on "b"
        await pilot.pause()
        table.calls.clear()

        assert sync_rows(table, rows(("d", "4"), ("c", "3"), ("b", "2"), ("a", "1")))
        assert table.calls == []  # reordered in place: no cell rewritten, no row re-added
        assert [key for key, _ in shown(table)] == ["d", "c", "b", "a"]
        assert table.cursor_row == 2
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "b"

        # a row inserted above the cursor's row pushes it down: the cursor follows
        assert sync_rows(table, rows(("e", "5"), ("d", "4"), ("c", "3"), ("b", "2"), ("a", "1")))
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "b"
        # the cursor's row removed: the cursor stays within the table
        assert sync_rows(table, rows(("e", "5"), ("d", "4"), ("c", "3"), ("a", "1")))
        assert table.cursor_row < table.row_count
        await pilot.pause()


async def test_rows_sharing_every_cell_object_still_reorder() -> None:
    app = TableApp()
    async with app.run_test():
        table = app.query_one(Counting)
        same = [Text("x"), Text("y")]
        sync_rows(table, [("a", same), ("b", same), ("c", same)])
        assert sync_rows(table, [("c", same), ("a", same), ("b", same)])
        assert [key for key, _ in shown(table)] == ["c", "a", "b"]


async def test_duplicate_keys_are_refused() -> None:
    app = TableApp()
    async with app.run_test():
        table = app.query_one(Counting)
        with pytest.raises(ValueError, match="duplicate"):
            sync_rows(table, rows(("a", "1"), ("a", "2")))
