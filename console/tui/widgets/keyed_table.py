"""Keyed updates of a DataTable: a refresh rewrites only what changed (changed cells, rows
added or removed, a reorder when the order changed), as Dolphie's processlist does, so the
cursor, the scroll position and the unchanged rows stay put."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


def same_cell(old: object, new: object) -> bool:
    """Whether two cells render alike. ``Text.__eq__`` ignores the base style and the
    justification, so a cell that only changed colour would otherwise never be redrawn."""
    if old is new:
        return True
    if isinstance(old, Text) and isinstance(new, Text):
        return (
            old.plain == new.plain
            and old.spans == new.spans
            and old.style == new.style
            and old.justify == new.justify
            and old.overflow == new.overflow
            and old.no_wrap == new.no_wrap
            and old.end == new.end
        )
    return type(old) is type(new) and old == new


def _reorder(table: DataTable[Text], order: Sequence[str]) -> None:
    """Put the table's rows (which are exactly ``order``'s keys) in that order."""
    # DataTable.sort hands the key function the cell values, not the row key; the cell
    # objects themselves tell the rows apart unless two rows share every cell object.
    wanted = {key: index for index, key in enumerate(order)}
    by_cells: dict[tuple[int, ...], int] = {}
    for row in table.ordered_rows:
        key = row.key.value
        assert key is not None
        by_cells[tuple(id(cell) for cell in table.get_row(row.key))] = wanted[key]
    if len(by_cells) == table.row_count:
        columns = [column.key for column in table.ordered_columns]

        def position(cells: object) -> int:
            # itemgetter over one column gives the bare value, over several a tuple
            values = (cells,) if len(columns) == 1 else cells
            assert isinstance(values, tuple)
            return by_cells[tuple(id(cell) for cell in values)]

        table.sort(*columns, key=position)
        return
    current = [row.key.value for row in table.ordered_rows]
    pairs = enumerate(zip(current, order, strict=True))
    first = next(i for i, (have, want) in pairs if have != want)
    moved = {key: table.get_row(key) for key in order[first:]}
    for key in order[first:]:
        table.remove_row(key)
    for key in order[first:]:
        table.add_row(*moved[key], key=key)


def sync_rows(table: DataTable[Text], rows: Sequence[tuple[str, Sequence[Text]]]) -> bool:
    """Make ``table`` show exactly ``rows`` (row key, cells) in this order, touching only what
    differs; the cursor stays on its row key while that row exists. Returns whether anything
    changed. Never clears the table."""
    order = [key for key, _ in rows]
    if len(set(order)) != len(order):
        raise ValueError("sync_rows: duplicate row keys")
    cursor_key: str | None = None
    if table.row_count:
        cursor_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    changed = False
    wanted = set(order)
    for row in list(table.ordered_rows):
        if row.key.value not in wanted:
            table.remove_row(row.key)
            changed = True

    columns = [column.key for column in table.ordered_columns]
    for key, cells in rows:
        row_key = RowKey(key)
        if row_key not in table.rows:
            table.add_row(*cells, key=key)
            changed = True
            continue
        old = table.get_row(row_key)
        for index, column_key in enumerate(columns):
            new: Text | None = cells[index] if index < len(cells) else None
            if not same_cell(old[index], new):
                table.update_cell(row_key, column_key, new, update_width=True)  # type: ignore[arg-type]
                changed = True

    if [row.key.value for row in table.ordered_rows] != order:
        _reorder(table, order)
        changed = True

    if cursor_key is not None and RowKey(cursor_key) in table.rows:
        index = table.get_row_index(cursor_key)
        if index != table.cursor_row:
            table.move_cursor(row=index, animate=False)
    return changed
