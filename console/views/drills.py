"""Drills view: past game-day drills from their reports (``<run_dir>/drills/``), newest first,
with the scores and timeline of the selected one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from console.adapters.backends import Backends
from console.drills.report import PastDrill, history


@dataclass(frozen=True)
class DrillsSnapshot:
    drills: list[PastDrill]


async def fetch_drills(backends: Backends) -> DrillsSnapshot:
    return DrillsSnapshot(await asyncio.to_thread(history, backends.settings))
