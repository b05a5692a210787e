"""Audit: the newest records of the tamper-evident log and whether the whole log verifies."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from console.audit.records import AuditRecord
from console.tui.screens.base import ViewScreen
from console.tui.text import plain, printable
from console.tui.widgets.keyed_table import sync_rows
from console.views.audit import AuditSnapshot, fetch_audit

RESULT_STYLE = {"ok": "green", "noop": "dim", "failed": "bold red", "compensated": "yellow"}


class AuditScreen(ViewScreen[AuditSnapshot]):
    VIEW = "audit"

    def compose_body(self) -> ComposeResult:
        yield Static("", id="verify")
        table: DataTable[Text] = DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(
            "seq",
            "time",
            "kind",
            "runbook",
            "step",
            "action",
            "target",
            "result",
            "operator",
            "run",
        )
        yield table
        yield Static("", id="audit-detail")

    async def fetch(self) -> AuditSnapshot:
        return await fetch_audit(self.context.backends)

    def has_no_data(self, snapshot: AuditSnapshot) -> bool:
        return not snapshot.records

    def show_snapshot(self, snapshot: AuditSnapshot) -> None:
        verify = Text()
        report = snapshot.verify
        if report is None and snapshot.verify_error is None:
            verify.append(
                "no audit records yet: nothing has been done from this console", style="dim"
            )
        elif report is None:
            verify.append("✖ not verified: " + printable(snapshot.verify_error), style="red")
        elif report.ok:
            verify.append(
                f"✔ verified: {report.records} records, chain and HMAC intact", style="bold green"
            )
            if report.outcome_unknown:
                verify.append(
                    f"  ({len(report.outcome_unknown)} intents without an outcome)", style="yellow"
                )
        else:
            where = f"line {report.first_bad_line}: " if report.first_bad_line else ""
            verify.append(f"✖ TAMPERED: {where}" + printable(report.problem), style="bold red")
        self.query_one("#verify", Static).update(verify)
        table = self.query_one("#audit-table", DataTable)
        rows: list[tuple[str, list[Text]]] = []
        for key, r in record_keys(snapshot).items():
            if not self.keep(r.runbook, r.step, r.action, r.target, r.result, r.operator, r.run_id):
                continue
            rows.append(
                (
                    key,
                    [
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
                    ],
                )
            )
        sync_rows(table, rows)
        self._show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        """The selected record in full, and the run it belongs to, step by step."""
        detail = self.query_one("#audit-detail", Static)
        table = self.query_one("#audit-table", DataTable)
        if self.snapshot is None or table.row_count == 0:
            detail.update("")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        record = record_keys(self.snapshot).get(key or "")
        if record is None:
            detail.update("")
            return
        text = Text(
            f"record {record.seq}  {record.time:%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC", style="bold"
        )
        text.append(
            f"  {printable(record.kind)} by {printable(record.operator)} in "
            f"{printable(record.environment)}"
        )
        for label, value in (
            ("arguments", record.arguments),
            ("before", record.before),
            ("after", record.after),
            ("error", record.error),
        ):
            if value not in (None, {}, ""):
                text.append(f"\n{label}  ", style="bold")
                text.append(printable(value, 400))
        text.append(f"\nhash  {record.hash[:32]}…  prev {record.prev_hash[:16]}…", style="dim")
        text.append(f"\nrun {printable(record.run_id)}:", style="bold")
        for r in (r for r in self.snapshot.records if r.run_id == record.run_id):
            text.append(
                f"  {r.seq} {printable(r.kind)}"
                f"{' ' + printable(r.step) if r.step else ''}"
                f"{' ' + printable(r.result) if r.result else ''}"
            )
        detail.update(text)


def record_keys(snapshot: AuditSnapshot) -> dict[str, AuditRecord]:
    """The records newest first by row key: the sequence number, with a suffix for a number
    seen again (a tampered log is shown as read, not refused)."""
    keyed: dict[str, AuditRecord] = {}
    for record in reversed(snapshot.records):
        key, again = str(record.seq), 0
        while key in keyed:
            again += 1
            key = f"{record.seq}.{again}"
        keyed[key] = record
    return keyed
