"""``[robustness]``: the gate a model version's recorded evaluation must pass before it is
promoted (``promote-model``), what ``aml-console eval`` runs by default, and the margin by which
a candidate may be worse than the champion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from console.config_fields import Section

AttackName = Literal["fgsm", "pgd", "hopskipjump", "extraction", "backdoor"]
ATTACKS: tuple[AttackName, ...] = ("fgsm", "pgd", "hopskipjump", "extraction", "backdoor")
DIGITS_HOLDOUT = "digits-split:test_size=0.25,random_state=0,stratify=True"
"""The id of ``eval``'s built-in held-out set (``console/evaluation/holdout.DIGITS_SPLIT``, whose
``holdout_id`` must equal it: tests/evaluation check)."""


class RobustnessSection(Section):
    max_adversarial_success: float = Field(default=0.6, ge=0, le=1)
    """Highest adversarial success rate any evasion attack may reach at ``epsilon`` (M1).
    Measured on the seed's versions (all 450 held-out digits, eps 1): PGD fools the MLP
    (champion) on 0.40 of them, the logistic regression on 0.64. The ``backdoor`` trigger
    probe (200 inputs): 0.29 on the MLP; 1.0 on the lab's poisoned candidate and on the
    logistic regression too, whose scaler makes a near-constant pixel a trigger of its own."""
    min_clean_accuracy: float = Field(default=0.9, ge=0, le=1)
    """Lowest accuracy on the held-out set (M2)."""
    max_detector_fpr: float = Field(default=0.1, ge=0, le=1)
    """Highest false-positive rate of the configured detector on clean held-out inputs (M3)."""
    max_regression: float = Field(default=0.05, ge=0, le=1)
    """How much worse than the champion a candidate may be on each gated figure."""
    attacks: list[AttackName] = Field(default_factory=lambda: list(ATTACKS), min_length=1)
    """What ``eval`` runs without ``--attacks`` (by default all of ``ATTACKS``: FGSM, PGD,
    HopSkipJump, extraction and the backdoor trigger probe)."""
    epsilon: float = Field(default=1.0, gt=0, le=16)
    """The gated strength of FGSM and PGD (L-inf, in pixel units of 0..16). At 2 white-box PGD
    fools 0.97-0.98 of the seed's versions (4: all), which no gate could tell apart."""
    strengths: list[float] = Field(default_factory=lambda: [1.0, 2.0, 4.0], min_length=1)
    """Every strength ``eval`` measures FGSM and PGD at (``epsilon`` is added when missing)."""
    samples: int = Field(default=200, ge=10, le=5000)
    """Held-out inputs each attack runs on."""
    budget: int = Field(default=2000, ge=10, le=1_000_000)
    """Queries the extraction attack may send (``--budget``); HopSkipJump's per input."""
    cost_per_request: float = Field(default=0.0, ge=0, le=1_000_000)
    """What serving one request costs, in ``cost_unit`` (M8): the Fleet view prices the refused
    and flagged traffic with it. 0: shown in serving seconds only."""
    cost_unit: str = Field(default="USD", min_length=1, max_length=12)
    """The currency ``cost_per_request`` is in (a label only)."""
    seed: int = 0
    holdout: str = Field(default=DIGITS_HOLDOUT, min_length=1, max_length=200)
    """The held-out set a record must have been measured on: the built-in split's id, or
    ``sha256:<hex>`` of an agreed ``--holdout`` file's x and y bytes (``eval -o json`` prints a
    file's id as ``holdout_id``). A record of any other set misses the gate."""
