"""The lab's attacks as a drill runs them: the same ``run_<kind>`` functions as ``aml-console
lab attack``, recorded in ``lab status`` while they run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from console.config import Settings


async def run_attack(
    settings: Settings, kind: str, client: str, model: str, args: dict[str, Any]
) -> dict[str, Any]:
    from console.lab.attacks import state as attack_state

    attack = attack_function(kind)
    async with attack_state.tracked(settings, kind, client, model) as record:
        report = await attack(settings, client, model=model, **args)
        record.report = report.as_dict()
    data: dict[str, Any] = report.as_dict()
    return data


def attack_function(kind: str) -> Callable[..., Awaitable[Any]]:
    """``run_<kind>`` of the lab's attacks, imported when used (scikit-learn, ART)."""
    if kind == "extraction":
        from console.lab.attacks.extraction import run_extraction

        return run_extraction
    if kind == "evasion":
        from console.lab.attacks.evasion import run_evasion

        return run_evasion
    if kind == "flood":
        from console.lab.attacks.flood import run_flood

        return run_flood
    from console.lab.attacks.poisoning import run_poisoning

    return run_poisoning
