"""Runbooks view: every runbook in the runbook folders, validated as `runbook validate` does,
with the ones that do not validate listed beside the others (with why), not hidden."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from console.adapters.backends import Backends
from console.errors import RunbookValidationError
from console.runbooks.loader import LoadedRunbook, load_runbook, runbook_files


@dataclass(frozen=True)
class RunbookEntry:
    name: str
    path: Path
    loaded: LoadedRunbook | None
    """None when the file does not validate."""
    problems: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.loaded is not None


@dataclass(frozen=True)
class RunbooksSnapshot:
    entries: list[RunbookEntry]


async def fetch_runbooks(backends: Backends) -> RunbooksSnapshot:
    return await asyncio.to_thread(read_runbooks, backends.settings.runbook_search_path)


def read_runbooks(dirs: list[Path]) -> RunbooksSnapshot:
    entries = []
    for path in runbook_files(dirs):
        try:
            loaded = load_runbook(path)
        except RunbookValidationError as exc:
            entries.append(RunbookEntry(path.stem, path, None, tuple(exc.problems)))
        else:
            entries.append(RunbookEntry(loaded.runbook.name, path, loaded))
    entries.sort(key=lambda e: (not e.valid, e.name))
    return RunbooksSnapshot(entries)
