"""What every on-call view shares: the top bar (environment, view, read-only banner), the data
status badge, a refresh loop in a worker that never overlaps itself, the PromQL inspector and
the `/` filter."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from console.errors import ConsoleError
from console.tui.context import ScreenContext
from console.tui.skin import environment_style
from console.tui.text import printable
from console.tui.widgets.status import StatusBadge

if TYPE_CHECKING:  # the queries (and the policy store's adapter) load with a view needing them
    from console.config import Settings
    from console.views.queries import PanelQuery

log = logging.getLogger(__name__)
S = TypeVar("S")


class TopBar(Static):
    """Environment label (coloured per environment, as k9s colours a context), who the
    operator is and where the name came from, the view, and the read-only banner."""

    def __init__(
        self,
        view: str,
        environment: str,
        read_only: bool,
        color: str = "auto",
        operator: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(id="topbar")
        text = Text()
        text.append(f" {printable(environment, 40)} ", style=environment_style(environment, color))
        if operator is not None:
            name, source = operator
            text.append("  operator ", style="dim")
            text.append(printable(name, 40), style="bold")
            text.append(f" ({printable(source, 40)})", style="dim")
        text.append(f"  aml-console › {view}", style="bold")
        if read_only:
            text.append("   READ-ONLY: actions disabled ", style="bold black on yellow")
        i_key = "i incident" if view == "alerts" else "i PromQL"  # Alerts binds i to incidents
        text.append(f"   ? help  : command  / filter  {i_key}", style="dim")
        self.update(text)

    @classmethod
    def of(cls, view: str, settings: Settings) -> TopBar:
        """The bar of ``view`` for ``settings``' context and operator."""
        return cls(
            view,
            settings.environment,
            settings.read_only,
            settings.tui.environment_color,
            (settings.operator, settings.operator_source),
        )


class ViewScreen(Screen[None], Generic[S]):
    """A view whose data comes from ``fetch`` every ``refresh_s`` seconds."""

    VIEW: ClassVar[str] = ""
    DEFAULT_SORT: ClassVar[str] = ""
    """A sortable view's own order (its rows as the snapshot orders them)."""
    QUERIES: ClassVar[tuple[PanelQuery, ...]] = ()
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("r", "refresh_now", "Refresh"),
        Binding("i", "inspect", "PromQL", show=False),
    ]

    def __init__(self, context: ScreenContext) -> None:
        super().__init__(name=self.VIEW)
        self.context = context
        self.snapshot: S | None = None
        self.sort_by = self.DEFAULT_SORT
        """The column the rows are sorted by (sortable views: their sort keys set it)."""
        self.sort_reversed = False
        self.filter_text = ""
        self.refreshes = 0
        """Completed refreshes (successful or not): tests wait on it."""

    def compose(self) -> ComposeResult:
        yield TopBar.of(self.VIEW, self.context.settings)
        yield StatusBadge(self.context.monotonic, id="badge")
        with Vertical(id="body"):
            yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError

    @property
    def badge(self) -> StatusBadge:
        return self.query_one("#badge", StatusBadge)

    def on_mount(self) -> None:
        # After the first frame: the view's frame (top bar, badge, empty tables) is painted
        # before its first fetch starts making clients and sending queries.
        self.call_after_refresh(self.action_refresh_now)

    def action_refresh_now(self) -> None:
        # exclusive: a manual refresh cancels the running one; the loop re-arms after each run,
        # so two refreshes of one view never overlap.
        self.run_worker(
            self._refresh,  # type: ignore[arg-type]  # Textual's overloads miss async methods
            group=f"refresh-{self.VIEW}",
            exclusive=True,
            exit_on_error=False,
        )

    async def _refresh(self) -> None:
        panel = self.badge.panel
        try:
            snapshot = await self.fetch()
        except ConsoleError as exc:
            panel.failed(str(exc))
        except Exception as exc:  # a bug in a view must not take the console down
            log.exception("refresh of %s failed", self.VIEW)
            panel.failed(f"{type(exc).__name__}: {exc}")
        else:
            self.snapshot = snapshot
            if self._show(snapshot):
                panel.succeeded(
                    self.has_no_data(snapshot),
                    tuple(self.warnings(snapshot)),
                    self.context.monotonic(),
                )
        finally:
            self.refreshes += 1
            self.badge.show()
            self.set_timer(self.context.refresh_s, self.action_refresh_now)

    async def fetch(self) -> S:
        raise NotImplementedError

    def show_snapshot(self, snapshot: S) -> None:
        raise NotImplementedError

    def has_no_data(self, snapshot: S) -> bool:
        return False

    def warnings(self, snapshot: S) -> list[str]:
        return []

    def _show(self, snapshot: S) -> bool:
        """Draw ``snapshot``; a drawing bug is the panel's error badge, never the console's
        exit (a message handler's exception would end the app)."""
        try:
            with self.app.batch_update():
                self.show_snapshot(snapshot)
        except Exception as exc:
            log.exception("drawing %s failed", self.VIEW)
            self.badge.panel.failed(f"{type(exc).__name__}: {exc}")
            self.badge.show()
            return False
        return True

    def action_sort(self, name: str) -> None:
        """Sort by ``name``; the same key again reverses the order (as k9s)."""
        if name == self.sort_by:
            self.sort_reversed = not self.sort_reversed
        else:
            self.sort_by, self.sort_reversed = name, False
        self.show_again()

    def show_again(self) -> None:
        """Draw the last snapshot again (a sort, a filter, a page)."""
        if self.snapshot is not None:
            self._show(self.snapshot)

    def apply_filter(self, text: str) -> None:
        self.filter_text = text.strip().lower()
        self.show_again()

    def apply_filter_or_none(self, text: str | None) -> None:
        if text is not None:
            self.apply_filter(text)

    def cursor_key(self, table_id: str) -> str | None:
        """The key of the row under a table's cursor; None before data or when it is empty."""
        if self.snapshot is None:
            return None
        table = self.query_one(table_id, DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def keep(self, *values: object) -> bool:
        """Whether a row with these values passes the `/` filter (substring, any column)."""
        if not self.filter_text:
            return True
        return any(self.filter_text in str(v).lower() for v in values if v is not None)

    def action_inspect(self) -> None:
        from console.tui.screens.dialogs import InspectScreen

        if not self.QUERIES:
            self.notify("this view is not drawn from PromQL", severity="information")
            return
        self.app.push_screen(InspectScreen(self.QUERIES))
