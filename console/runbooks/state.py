"""Persisted run state, so a run killed mid-way can be seen, resumed or aborted."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from console.adapters.processes import start_ticks
from console.errors import RunNotFound, RunStateError
from console.private_files import private_dir, write_private

StepStatus = Literal[
    "pending",
    "applying",
    "applied",
    "noop",
    "failed",
    "compensating",
    "compensated",
    "compensation-failed",
    "not-compensated",
]
RunStatus = Literal["running", "succeeded", "compensated", "failed", "interrupted", "aborted"]
UNFINISHED: tuple[RunStatus, ...] = ("running", "interrupted", "failed")


class StepState(BaseModel):
    id: str
    action: str
    status: StepStatus = "pending"
    summary: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)
    before: Any = None
    after: Any = None
    error: str | None = None
    uncertain: bool = False
    """The step failed in a way that may have left its change in place (timeout, transport
    error, 5xx, crash): compensation covers it too."""
    fingerprint: Any = None
    """What the operator confirmed (see Action.fingerprint); apply refuses if it changed."""
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def in_place(self) -> bool:
        """Its change is (or may be) in place: what an undo covers."""
        return self.status in ("applied", "applying", "compensating", "compensation-failed") or (
            self.status == "failed" and self.uncertain
        )


class RunState(BaseModel):
    run_id: str
    runbook: str
    runbook_path: str
    runbook_sha256: str
    params: dict[str, Any]
    """Parameters with secrets redacted."""
    secret_params: list[str] = Field(default_factory=list)
    operator: str
    environment: str
    target: str
    status: RunStatus = "running"
    pid: int = Field(default_factory=os.getpid)
    pid_start: int | None = Field(default_factory=lambda: start_ticks(os.getpid()))
    """Start time of the process, so a pid reused after a crash is not taken for the run."""
    host: str = Field(default_factory=socket.gethostname)
    lease_token: str | None = None
    """Token of the leases this run holds; resume/abort take back only these."""
    leases: list[str] = Field(default_factory=list)
    """What the run leases: its target and every resource it changes (empty in the state of
    a run from before leases covered resources: it leased its target)."""
    requested_by: str | None = None
    """For a run that was approved: who asked for it (``operator`` is who applies it)."""
    approved_by: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    steps: list[StepState] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None

    def step(self, step_id: str) -> StepState:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def lease_names(self) -> list[str]:
        return self.leases or [self.target]

    def applied_steps(self) -> list[StepState]:
        return [s for s in self.steps if s.status in ("applied", "applying")]

    def process_alive(self) -> bool:
        if self.host != socket.gethostname():
            return True  # cannot tell from here: assume it may still run
        started = start_ticks(self.pid)
        return started is not None and (self.pid_start is None or started == self.pid_start)

    @property
    def effective_status(self) -> RunStatus:
        """A 'running' run whose process is gone was interrupted (crash, kill -9)."""
        if self.status == "running" and not self.process_alive():
            return "interrupted"
        return self.status


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class RunStore:
    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir

    def folder(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or run_id.startswith(".") or not run_id.isprintable():
            raise RunNotFound(f"{run_id[:40]!r} is not a run id")
        return self.runs_dir / run_id

    def save(self, state: RunState) -> None:
        """Write the state atomically, readable by its owner only (it holds the lease token)."""
        state.updated_at = datetime.now(UTC)
        folder = self.folder(state.run_id)
        try:
            private_dir(self.runs_dir)
            private_dir(folder)
            write_private(folder / "state.json", state.model_dump_json(indent=2).encode())
        except OSError as exc:
            raise RunStateError(
                f"cannot save the state of run {state.run_id} in {folder}: {exc.strerror or exc}"
            ) from None

    def discard(self, run_id: str) -> None:
        """Forget a run that never started (its intent could not be audited)."""
        folder = self.folder(run_id)
        with contextlib.suppress(OSError):
            (folder / "state.json").unlink()
            folder.rmdir()

    def load(self, run_id: str) -> RunState:
        path = self.folder(run_id) / "state.json"
        try:
            return RunState.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunNotFound(f"no run {run_id!r} in {self.runs_dir}") from None
        except (OSError, ValidationError, ValueError) as exc:
            raise RunStateError(f"state of run {run_id} is unreadable ({path}): {exc}") from None

    def all(self) -> list[RunState]:
        if not self.runs_dir.is_dir():
            return []
        runs = []
        for folder in sorted(self.runs_dir.iterdir()):
            if (folder / "state.json").is_file():
                try:
                    runs.append(self.load(folder.name))
                except RunStateError:
                    continue
        return runs
