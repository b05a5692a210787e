"""Cells for a version's recorded robustness (Models and Fleet views). Tag values are registry
data anyone with write access may have written: every cell shows them literally."""

from __future__ import annotations

from rich.text import Text

from console.replay.versions import JudgedRobustness
from console.tui.text import plain

STYLES = {True: "green", False: "bold red", None: "dim"}
"""Passes the gate, misses it, no usable record."""


def gate_cell(judged: JudgedRobustness | None) -> Text:
    """``PASS``, ``MISS`` or ``-`` (no usable record)."""
    if judged is None or judged.passes is None:
        return Text("–", style="dim")
    return Text("PASS" if judged.passes else "MISS", style=STYLES[judged.passes])


def gate_reason_cell(judged: JudgedRobustness | None) -> Text:
    """``PASS``, ``MISS backdoor, samples`` (the figures it misses on), or ``-``."""
    if judged is None or judged.passes is None or judged.passes:
        return gate_cell(judged)
    names = ", ".join(dict.fromkeys(_miss_name(m.figure, m.why) for m in judged.misses))
    return plain(f"MISS {names}", STYLES[False], 40)


def _miss_name(figure: str, why: str) -> str:
    # max_adversarial_success names its attack first: "pgd adversarial_success_rate 0.66 ..."
    return why.split(" ", 1)[0] if figure == "max_adversarial_success" else figure


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
