"""Cells for a version's recorded robustness (Models and Fleet views). Tag values are registry
data anyone with write access may have written: every cell shows them literally."""

from __future__ import annotations

from rich.text import Text

from console.replay.versions import JudgedRobustness
from console.tui.text import plain

STYLES = {True: "green", False: "bold red", None: "dim"}
"""Passes the gate, misses it, no usable record."""


def robustness_cell(judged: JudgedRobustness | None, limit: int = 120) -> Text:
    """``clean 0.95, adversarial success 0.42, detector FPR 0.03, passes the gate``: green when
    it passes the gate, red when it misses it, dim without a usable record (and why)."""
    if judged is None:
        return Text("no served version", style="dim")
    return plain(judged.quote(), STYLES[judged.passes], limit)


def gate_cell(judged: JudgedRobustness | None) -> Text:
    """``PASS``, ``MISS`` or ``-`` (no usable record)."""
    if judged is None or judged.passes is None:
        return Text("–", style="dim")
    return Text("PASS" if judged.passes else "MISS", style=STYLES[judged.passes])


def figures_cell(judged: JudgedRobustness | None) -> Text:
    """``clean 0.96  adv 0.64  FPR 0.04``, or why there is no usable record."""
    if judged is None:
        return Text("no served version", style="dim")
    record = judged.record
    if record is None:
        return plain(judged.verdict, STYLES[None], 60)
    worst = record.max_adversarial_success
    text = f"clean {record.clean_accuracy:.2f}  adv {'-' if worst is None else f'{worst:.2f}'}"
    return Text(f"{text}  FPR {record.detector_fpr:.2f}", style=STYLES[judged.passes])
