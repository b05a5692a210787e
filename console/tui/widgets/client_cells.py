"""How a client's policy and figures are drawn, the same in every view that lists clients
(Clients, and the Models view's clients of the selected model). Client ids are attacker text:
through ``plain``."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from console.adapters.policy_records import Block, Budget
from console.tui.text import age, number, plain
from console.views.client_selection import EXTRACTION_ALERT
from console.views.clients import ClientRow


def policy_cell(
    block: Block | None, budget: Budget | None, now: datetime, hardening: str | None = None
) -> Text:
    text = Text()
    if block is not None:
        left = age(max(0.0, (block.expires_at - now).total_seconds()))
        text.append(f"BLOCKED {left} left", style="bold red")
    if budget is not None:
        text.append(("  " if text else "") + budget.label, style="yellow")
    if hardening is not None:
        text.append(("  " if text else "") + f"hardened {hardening}", style="cyan")
    return text


def extraction_cell(value: float | None) -> Text:
    return number(value, style="bold red" if (value or 0) > EXTRACTION_ALERT else "")


def why_cell(row: ClientRow) -> Text:
    return plain(row.why, "yellow" if row.alerts else "", limit=60)


def summary_cells(row: ClientRow, now: datetime) -> list[Text]:
    """client, why, req/s, extraction, flagged/s, refused, policy."""
    return [
        plain(row.client, "bold"),
        why_cell(row),
        number(row.rate),
        extraction_cell(row.extraction),
        number(row.flagged_rate),
        number(row.refused_ratio, "{:.0%}"),
        policy_cell(row.block, row.budget, now, row.hardening.mode if row.hardening else None),
    ]
