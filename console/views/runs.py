"""Runs: the runbook runs kept in the run dir (``<run_dir>/runs/``), newest first, with what
each applied; what `runbook status --all` lists and `runbook resume`/`abort` act on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from console.adapters.backends import Backends
from console.errors import RunStateError
from console.runbooks.state import RunState, RunStore


@dataclass(frozen=True)
class RunsSnapshot:
    runs: list[RunState]
    """Newest first."""


async def fetch_runs(backends: Backends) -> RunsSnapshot:
    return await asyncio.to_thread(read_runs, backends)


def read_runs(backends: Backends) -> RunsSnapshot:
    store = RunStore(backends.settings.runs_dir)
    try:
        runs = store.all()
    except OSError as exc:
        raise RunStateError(
            f"cannot read the runs in {store.runs_dir}: {exc.strerror or exc}"
        ) from None
    return RunsSnapshot(sorted(runs, key=lambda r: (r.created_at, r.run_id), reverse=True))
