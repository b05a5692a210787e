"""Run one of the registered attacks, recorded in ``lab status`` while it runs and after: the
one way ``aml-console lab attack KIND`` and the drills start an attack.

``prepare_attack`` checks everything that can be checked from the settings (read-only mode,
the kind, the arguments, the target being loopback); ``PreparedAttack.run`` runs it inside
``state.tracked``, so a crash, a Ctrl-C or a refusal is recorded as ``failed``. The first thing
it does there, still before any socket exists, is to check that the target is a service the
lab's launcher started (``console.lab.guard``): at the moment of attacking, after any
``start_after`` wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from console.config import Settings
from console.errors import LabError
from console.lab import guard
from console.lab.attacks import state
from console.lab.attacks.common import require_loopback_target
from console.lab.attacks.registry import Attack, attack_for


@dataclass(frozen=True)
class PreparedAttack:
    settings: Settings
    attack: Attack
    client: str
    model: str
    """The served model attacked (the configured first one when none was asked for)."""
    target: str
    """The URL it sends to, checked to be loopback."""
    args: Mapping[str, Any] = field(default_factory=dict)

    async def run(self, start_after: float = 0.0) -> dict[str, Any]:
        """The attack's report (``as_dict()``). ``start_after`` seconds are waited inside the
        record, so a scheduled attack (``demo``) is listed, and stopped by ``lab down``, while
        it waits."""
        function = self.attack.load()
        kind = self.attack.kind
        async with state.tracked(self.settings, kind, self.client, self.model) as record:
            await asyncio.sleep(start_after)
            guard.require_lab_service(self.attack.target, self.target)  # not a port-forward
            report = await function(self.settings, self.client, model=self.model, **self.args)
            data = report.as_dict()
            record.report = data
        return data


def prepare_attack(
    settings: Settings,
    kind: str,
    client: str,
    model: str | None = None,
    args: Mapping[str, Any] | None = None,
) -> PreparedAttack:
    """The attack ``kind`` as ``client`` against ``model``; ReadOnlyError in read-only mode,
    LabError for an unknown kind, an unknown argument or a target that is not loopback."""
    guard.refuse_read_only(settings, f"lab attack {kind}")
    attack = attack_for(kind)
    args = dict(args or {})
    problem = attack.argument_problem(args)
    if problem is not None:
        raise LabError(problem)
    target = require_loopback_target(attack.target_url(settings), attack.target)
    return PreparedAttack(
        settings, attack, client, model or settings.models.served[0], target, args
    )


__all__ = ["PreparedAttack", "prepare_attack"]
