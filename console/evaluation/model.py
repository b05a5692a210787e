"""What an evaluation is asked (``EvaluationRequest``), what it reports while it runs
(``Progress``), how it is cancelled (``EvaluationCancelled``) and what it ends with
(``EvaluationResult``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.config_robustness import ATTACKS, AttackName
from console.errors import ConsoleError, ParameterError
from console.robustness import RobustnessRecord


class EvaluationCancelled(ConsoleError):
    """The cancel flag was set: nothing was recorded."""


@dataclass(frozen=True)
class EvaluationRequest:
    model: str
    version: str
    """A version number, or an alias (``champion``)."""
    attacks: tuple[AttackName, ...] | None = None
    """Default: ``[robustness] attacks``."""
    budget: int | None = None
    samples: int | None = None
    holdout: Path | None = None
    """A ``.npz`` of ``x``, ``y``; default: the digits test split."""
    record: bool = True
    """False: measure only (read-only mode)."""


@dataclass(frozen=True)
class Progress:
    stage: str
    """``prepare``, an attack's name, ``record``."""
    done: int
    total: int


ProgressCallback = Callable[[Progress], None]


@dataclass
class EvaluationResult:
    record: RobustnessRecord
    recorded: bool
    """Written to the registry (a run and the version's tags)."""
    report: dict[str, Any] = field(default_factory=dict)
    """``report.json``: the record's figures and what each attack cost."""
    seconds: float = 0.0


def parse_attacks(text: str) -> tuple[AttackName, ...]:
    """``fgsm,pgd`` -> the attacks in that order, each once; an unknown name is refused."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown or not names:
        raise ParameterError(
            f"unknown attack {', '.join(repr(n[:30]) for n in unknown) or '(none given)'} "
            f"(known: {', '.join(ATTACKS)})"
        )
    chosen: list[AttackName] = [a for a in ATTACKS if a in names]
    return tuple(sorted(chosen, key=names.index))
