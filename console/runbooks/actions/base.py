"""What every action type provides: plan (read real state), apply, compensate."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from console.adapters.backends import Backends
from console.config import Settings
from console.runbooks.resources import Resource


class ActionArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


ArgsT = TypeVar("ArgsT", bound=ActionArgs)


@dataclass
class ActionContext:
    settings: Settings
    backends: Backends
    run_id: str
    operator: str
    run_dir: Path
    """This run's folder (evidence goes under it)."""


@dataclass
class StepPlan:
    summary: str
    """One line: what will change, in words."""
    before: Any
    """Current state, read from the real system (JSON-able)."""
    after: Any
    """State after apply (JSON-able)."""
    noop: bool = False
    """The effect is already in place: apply will change nothing."""
    requests: list[str] = field(default_factory=list)
    """The exact requests apply will send."""


class Action(ABC, Generic[ArgsT]):
    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[ActionArgs]]
    idempotent: ClassVar[bool] = True
    """Safe to send again after an unknown outcome: only these get retries."""
    resource_args: ClassVar[tuple[str, ...]] = ()
    """The arguments that name what the action changes: the run leases it before its first
    step, so they must be known then (never from an earlier step's result, nor secret)."""

    def changes(self, args: Mapping[str, Any]) -> list[Resource]:
        """The resources apply (or compensate) changes, from the ``resource_args`` of its
        arguments (rendered, or symbolic when a file is validated). None by default: evidence,
        waits and HTTP calls change nothing the console can name (an HTTP call is covered by
        the run's lease on its target)."""
        return []

    @abstractmethod
    async def plan(self, args: ArgsT, ctx: ActionContext) -> StepPlan: ...

    @abstractmethod
    async def apply(self, args: ArgsT, ctx: ActionContext, plan: StepPlan) -> Any:
        """Make the change; return the state after (JSON-able)."""

    @abstractmethod
    async def compensate(self, args: ArgsT, ctx: ActionContext, before: Any, after: Any) -> Any:
        """Undo apply, given the recorded before and after states; return the state now."""

    def retry_safe(self, args: ArgsT) -> bool:
        """Whether apply may be retried after an error that may pass."""
        return self.idempotent

    def fingerprint(self, plan: StepPlan) -> Any:
        """What must not change between the confirmed plan and apply: the state it read and
        the change it will make (without values derived from the clock)."""
        return {"before": plan.before, "after": plan.after}


class Check(ABC, Generic[ArgsT]):
    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[ActionArgs]]

    @abstractmethod
    async def check(self, args: ArgsT, ctx: ActionContext) -> str | None:
        """None when the precondition holds, else what is wrong."""
