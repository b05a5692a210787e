"""``[robustness]``: the gate a model version's recorded evaluation must pass before it is
promoted (``promote-model``), what ``aml-console eval`` runs by default, and the margin by which
a candidate may be worse than the champion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from console.config_fields import Section

AttackName = Literal["fgsm", "pgd", "hopskipjump", "extraction"]
ATTACKS: tuple[AttackName, ...] = ("fgsm", "pgd", "hopskipjump", "extraction")


class RobustnessSection(Section):
    max_adversarial_success: float = Field(default=0.6, ge=0, le=1)
    """Highest adversarial success rate any evasion attack may reach at ``epsilon`` (M1)."""
    min_clean_accuracy: float = Field(default=0.9, ge=0, le=1)
    """Lowest accuracy on the held-out set (M2)."""
    max_detector_fpr: float = Field(default=0.1, ge=0, le=1)
    """Highest false-positive rate of the configured detector on clean held-out inputs (M3)."""
    max_regression: float = Field(default=0.05, ge=0, le=1)
    """How much worse than the champion a candidate may be on each gated figure."""
    attacks: list[AttackName] = Field(default_factory=lambda: list(ATTACKS), min_length=1)
    """What ``eval`` runs without ``--attacks``."""
    epsilon: float = Field(default=2.0, gt=0, le=16)
    """The gated strength of FGSM and PGD (L-inf, in pixel units of 0..16)."""
    strengths: list[float] = Field(default_factory=lambda: [1.0, 2.0, 4.0], min_length=1)
    """Every strength ``eval`` measures FGSM and PGD at (``epsilon`` is added when missing)."""
    samples: int = Field(default=200, ge=10, le=5000)
    """Held-out inputs each attack runs on."""
    budget: int = Field(default=2000, ge=10, le=1_000_000)
    """Queries the extraction attack may send (``--budget``); HopSkipJump's per input."""
    seed: int = 0
