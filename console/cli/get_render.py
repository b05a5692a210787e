"""How ``aml-console get`` prints a listing: a table for people (some fields, formatted, every
cell stripped of control characters and markup), or every field as JSON (a list of objects) or
CSV (a header row, then one line per row).

CSV cells that came from outside (client ids, labels, reasons) can be read by a spreadsheet as a
formula (``=cmd|' /C calc'!A0``): a text cell that would start one is prefixed with ``'``, as
OWASP advises. A closed stdout (``| head -1``) stops the printing quietly, as it does for the
runbook commands (``runbook_render.PipeSafeConsole``).
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from console.cli.common import OutputFormat, new_table, safe
from console.cli.get_rows import Cell, Listing, Row
from console.cli.runbook_render import out, write_json

Column = tuple[str, Callable[[Row], str]]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
"""What makes a spreadsheet read a cell as a formula (or hide where one starts)."""


def show(view: str, listing: Listing, output: OutputFormat, filtered: bool) -> None:
    if output is OutputFormat.json:
        write_json([{k: json_value(row[k]) for k in listing.fields} for row in listing.rows])
    elif output is OutputFormat.csv:
        write_text(csv_text(listing))
    else:
        _table(view, listing, filtered)


def json_value(value: Cell) -> Any:
    return _iso(value) if isinstance(value, datetime) else value


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def csv_text(listing: Listing) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(listing.fields)
    for row in listing.rows:
        writer.writerow([csv_cell(row[k]) for k in listing.fields])
    return buffer.getvalue()


def csv_cell(value: Cell) -> str:
    """One CSV cell: numbers, booleans and times as written by the console; text (which may
    be anyone's) neutralised if a spreadsheet would take it for a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return _iso(value)
    return neutralised(_joined(value))


def neutralised(text: str) -> str:
    if text.startswith(FORMULA_STARTS) or text.lstrip().startswith(FORMULA_STARTS):
        return "'" + text
    return text


def _joined(value: str | list[str] | dict[str, str]) -> str:
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ";".join(value)
    return value


def write_text(text: str) -> None:
    if out.closed:
        return
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        out.on_broken_pipe()


def _table(view: str, listing: Listing, filtered: bool) -> None:
    if not listing.rows:
        out.print(f"no {view}{' matching the filters' if filtered else ''}")
    else:
        columns = TABLES[view]
        grid = new_table(*(header for header, _ in columns))
        for row in listing.rows:
            grid.add_row(*(safe(cell(row)) for _, cell in columns))
        out.print(grid)
    if listing.note:
        out.print(f"[dim]{safe(listing.note)}[/]")


def _text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return ", ".join(value) if isinstance(value, list) else _pairs(value)
    return str(value)


def _pairs(value: dict[str, str]) -> str:
    return ", ".join(f"{k}→{v}" for k, v in value.items())


def _number(fmt: str, scale: float = 1.0) -> Callable[[Cell], str]:
    def render(value: Cell) -> str:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return "–"
        return fmt.format(value * scale)

    return render


def field(name: str, fmt: Callable[[Cell], str] = _text) -> Column:
    return (name.replace("_", " "), lambda row: fmt(row.get(name)))


def named(header: str, name: str, fmt: Callable[[Cell], str] = _text) -> Column:
    return (header, lambda row: fmt(row.get(name)))


NUM = _number("{:.2f}")
PCT = _number("{:.1%}")
MS = _number("{:.1f} ms", 1e3)


def _policy(row: Row) -> str:
    if row.get("blocked") is None:
        return "?" if row.get("labelled") else ""
    parts = []
    if row.get("blocked"):
        parts.append(f"BLOCKED until {_text(row.get('block_expires_at'))}")
    if row.get("budget_qpm") is not None:
        parts.append(f"{row['budget_qpm']} qpm")
    return "  ".join(parts)


def _mitigation(row: Row) -> str:
    kind = row.get("kind")
    if kind == "block":
        return _text(row.get("reason"))
    if kind == "budget" and row.get("mode") == "shadow":
        share = row.get("shadow_share")
        percent = "-" if not isinstance(share, float) else f"{share:.0%}"
        return (
            f"shadow {row.get('qpm')} qpm: would have refused {percent} "
            f"({row.get('shadow_would_refuse')} of {row.get('shadow_seen')})"
        )
    if kind == "hardening":
        return f"answers {_text(row.get('output'))}"
    if kind == "budget":
        was = row.get("previous_qpm")
        return f"{row.get('qpm')} qpm (was {'default' if was is None else was})"
    return f"{_text(row.get('target'))}: {_text(row.get('before'))} → {_text(row.get('after'))}"


def _trend(value: Cell) -> str:
    """``1:0.5500`` entries, oldest first, as ``0.55 → 0.31``."""
    if not isinstance(value, list) or not value:
        return "no evaluation"
    return " → ".join(_number("{:.2f}")(_float(v.rpartition(":")[2])) for v in value)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _incidents(row: Row) -> str:
    counts = [(s, row.get(f"incidents_{s}")) for s in ("critical", "warning", "info")]
    if any(n is None for _, n in counts):
        return "?"
    return " ".join(f"{n} {s}" for s, n in counts if n) or "none"


def _drills(row: Row) -> str:
    runs, missed = row.get("drills"), row.get("drills_not_contained")
    if runs is None:
        return "?"
    return f"{runs} ({missed} not contained)" if missed else str(runs)


def _cost(row: Row) -> str:
    priced = row.get("unwanted_cost")
    if isinstance(priced, float):
        return f"{priced:,.2f} {_text(row.get('cost_unit'))}"
    return _number("{:,.1f} s")(row.get("unwanted_serving_seconds"))


TABLES: dict[str, tuple[Column, ...]] = {
    "alerts": (
        field("severity"),
        named("alert", "alertname"),
        field("client"),
        field("model"),
        field("state"),
        named("started", "starts_at"),
        field("summary"),
    ),
    "clients": (
        field("model"),
        field("client"),
        ("", lambda row: "" if row.get("labelled") else "(other)"),
        named("req/s", "rate", NUM),
        field("extraction", NUM),
        named("flagged/s", "flagged_rate", NUM),
        named("refused", "refused_ratio", PCT),
        ("policy", _policy),
    ),
    "models": (
        field("model"),
        named("req/s", "requests", NUM),
        named("P50", "p50_s", MS),
        named("P95", "p95_s", MS),
        named("P99", "p99_s", MS),
        named("errors", "error_ratio", PCT),
        named("flagged", "flag_rate", PCT),
        named("conf. z", "confidence_z", _number("{:+.1f}")),
        field("aliases"),
        field("versions"),
    ),
    "mitigations": (
        field("kind"),
        ("client", lambda row: _text(row.get("client") or row.get("model"))),
        ("what", _mitigation),
        named("since", "set_at"),
        named("expires", "expires_at"),
        field("operator"),
        named("run", "run_id"),
    ),
    "samples": (
        field("time"),
        field("client"),
        field("model"),
        field("version"),
        named("score", "detector_score", NUM),
        named("extraction", "extraction_score", NUM),
        named("label", "prediction"),
        field("confidence", NUM),
        field("flagged"),
        ("trace", lambda row: _text(row.get("trace_id"))[:16]),
    ),
    "fleet": (
        field("model"),
        field("champion"),
        field("gate"),
        field("robustness"),
        ("adv. success by evaluation", lambda row: _trend(row.get("adversarial_success_trend"))),
        ("incidents 30d", _incidents),
        named("open", "open_incidents"),
        ("drills 30d", _drills),
        named("alias moves", "registry_changes"),
        named("refused 1d", "refused", _number("{:,.0f}")),
        named("flagged 1d", "flagged", _number("{:,.0f}")),
        ("cost", _cost),
    ),
    "runs": (
        named("run", "run_id"),
        field("runbook"),
        field("target"),
        field("status"),
        field("operator"),
        named("started", "created_at"),
        field("applied"),
    ),
}
