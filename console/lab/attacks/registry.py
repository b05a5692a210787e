"""The lab's attacks by kind: one line each, the ``run_<kind>`` function named as
``"module:function"`` and imported only when used (scikit-learn and ART take seconds).

Adding an attack: its module here in ``console/lab/attacks/`` (an ``async def run_<kind>(settings,
client, *, model, ...)`` returning a report with ``as_dict()``), one line in ``ATTACKS``, and
its command in ``console/cli/lab_attacks.py``. Drill scenarios accept it from then on.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from console.config import Settings
from console.errors import LabError


class AttackReport(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


AttackFunction = Callable[..., Awaitable[AttackReport]]
RUN_PARAMETERS = ("settings", "client", "model")
"""What every ``run_<kind>`` takes; the rest are the attack's own arguments."""


@dataclass(frozen=True)
class Attack:
    kind: str
    function: str
    """``"module:function"`` of its ``run_<kind>``."""
    target: Literal["gateway", "mlflow"] = "gateway"
    """The service it sends to, checked to be loopback before it starts (poisoning registers
    a model version in MLflow)."""

    def load(self) -> AttackFunction:
        module, _, name = self.function.partition(":")
        function: AttackFunction = getattr(importlib.import_module(module), name)
        return function

    def arguments(self) -> frozenset[str]:
        """Keyword arguments of ``run_<kind>`` after settings, client and model."""
        parameters = inspect.signature(self.load()).parameters
        return frozenset(n for n in parameters if n not in RUN_PARAMETERS)

    def argument_problem(self, names: Iterable[str]) -> str | None:
        """What is wrong with passing ``names`` as this attack's arguments (None: nothing)."""
        allowed = self.arguments()
        unknown = sorted(set(names) - allowed)
        if unknown:
            return f"unknown {self.kind} argument(s) {unknown}; known: {sorted(allowed)}"
        return None

    def target_url(self, settings: Settings) -> str:
        return settings.mlflow.url if self.target == "mlflow" else settings.gateway.url


ATTACKS: dict[str, Attack] = {
    attack.kind: attack
    for attack in (
        Attack("extraction", "console.lab.attacks.extraction:run_extraction"),
        Attack("evasion", "console.lab.attacks.evasion:run_evasion"),
        Attack("flood", "console.lab.attacks.flood:run_flood"),
        Attack("poisoning", "console.lab.attacks.poisoning:run_poisoning", target="mlflow"),
    )
}

KINDS: tuple[str, ...] = tuple(ATTACKS)


def attack_for(kind: str) -> Attack:
    """The registered attack ``kind``; LabError naming the known kinds otherwise."""
    try:
        return ATTACKS[kind]
    except KeyError:
        raise LabError(f"unknown attack kind {kind!r}; known: {', '.join(KINDS)}") from None


__all__ = ["ATTACKS", "KINDS", "Attack", "AttackFunction", "AttackReport", "attack_for"]
