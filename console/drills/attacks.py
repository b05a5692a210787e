"""The lab's attacks as drills see them: the kinds a scenario may name and their arguments
(the lab's attack registry), and the same tracked runner as ``aml-console lab attack``. The
one module of the drills that imports ``console.lab``."""

from __future__ import annotations

from typing import Any

from console.config import Settings
from console.lab.attacks.registry import KINDS, attack_for


def attack_kinds() -> tuple[str, ...]:
    return KINDS


def attack_argument_problem(kind: str, args: dict[str, Any]) -> str | None:
    """What is wrong with ``args`` for attack ``kind`` (None: nothing); ``kind`` must be one
    of ``attack_kinds()``."""
    return attack_for(kind).argument_problem(args)


async def run_attack(
    settings: Settings, kind: str, client: str, model: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Run attack ``kind`` recorded in ``lab status``; its report as a dict."""
    from console.lab.attacks.launch import prepare_attack

    return await prepare_attack(settings, kind, client, model, args).run()
