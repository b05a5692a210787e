"""What every part of the engine works with: settings, run store, audit log and backends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from console.adapters.backends import Backends
from console.audit.log import AuditLog
from console.config import Settings
from console.errors import ReadOnlyError
from console.runbooks.actions import ActionContext
from console.runbooks.state import RunStore

if TYPE_CHECKING:
    from console.runbooks.approvals import Approvals


class EngineServices:
    def __init__(self, settings: Settings, audit: AuditLog | None = None) -> None:
        self.settings = settings
        self._audit = audit
        self.store = RunStore(settings.runs_dir)

    @property
    def audit(self) -> AuditLog:
        """Opened on first use: ``runbook status`` only reads run state."""
        if self._audit is None:
            self._audit = AuditLog.from_settings(self.settings)
        return self._audit

    @contextlib.asynccontextmanager
    async def action_context(self, run_id: str) -> AsyncIterator[ActionContext]:
        """What the actions of run ``run_id`` act through; its backends close on exit."""
        backends = Backends(self.settings)
        try:
            yield ActionContext(
                settings=self.settings,
                backends=backends,
                run_id=run_id,
                operator=self.settings.operator,
                run_dir=self.store.folder(run_id),
            )
        finally:
            await backends.aclose()

    @contextlib.asynccontextmanager
    async def approvals(self) -> AsyncIterator[Approvals]:
        """The context's approval requests, decided as ``settings.operator``."""
        from console.runbooks.approvals import Approvals

        backends = Backends(self.settings)
        try:
            yield Approvals(self.settings, self.audit, backends.approvals)
        finally:
            await backends.aclose()

    def refuse_read_only(self, what: str) -> None:
        if self.settings.read_only:
            raise ReadOnlyError(
                f"read-only mode: {what} would change production state and was refused "
                "(plans and --dry-run still work)"
            )
