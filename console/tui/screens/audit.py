"""Audit: the newest records of the tamper-evident log and whether the whole log verifies."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from console.tui.screens.base import ViewScreen
from console.tui.text import plain, printable
from console.views.audit import AuditSnapshot, fetch_audit

RESULT_STYLE = {"ok": "green", "noop": "dim", "failed": "bold red", "compensated": "yellow"}


class AuditScreen(ViewScreen[AuditSnapshot]):
    VIEW = "audit"

    def compose_body(self) -> ComposeResult:
        yield Static("", id="verify")
        table: DataTable[Text] = DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("seq", "time", "kind", "runbook", "step", "action", "target", "result",
                          "operator", "run")  # fmt: skip
        yield table

    async def fetch(self) -> AuditSnapshot:
        return await fetch_audit(self.console_app.sources)

    def has_no_data(self, snapshot: AuditSnapshot) -> bool:
        return not snapshot.records

    def show_snapshot(self, snapshot: AuditSnapshot) -> None:
        verify = Text()
        report = snapshot.verify
        if report is None and snapshot.verify_error is None:
            verify.append("no audit records yet: nothing has been done from this console",
                          style="dim")  # fmt: skip
        elif report is None:
            verify.append("✖ not verified: " + printable(snapshot.verify_error), style="red")
        elif report.ok:
            verify.append(f"✔ verified: {report.records} records, chain and HMAC intact",
                          style="bold green")  # fmt: skip
            if report.outcome_unknown:
                verify.append(f"  ({len(report.outcome_unknown)} intents without an outcome)",
                              style="yellow")  # fmt: skip
        else:
            verify.append(
                f"✖ TAMPERED: line {report.first_bad_line}: " + printable(report.problem),
                style="bold red",
            )
        self.query_one("#verify", Static).update(verify)
        table = self.query_one("#audit-table", DataTable)
        table.clear()
        for r in reversed(snapshot.records):
            if not self.keep(r.runbook, r.step, r.action, r.target, r.result, r.operator,
                             r.run_id):  # fmt: skip
                continue
            table.add_row(
                Text(str(r.seq)),
                Text(f"{r.time:%H:%M:%S}"),
                plain(r.kind),
                plain(r.runbook),
                plain(r.step or ""),
                plain(r.action or ""),
                plain(r.target or ""),
                plain(r.result or "", RESULT_STYLE.get(r.result or "", "")),
                plain(r.operator),
                plain(r.run_id),
            )
