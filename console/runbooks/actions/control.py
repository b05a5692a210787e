"""Flow control: wait between steps (e.g. for gateways to pick up a policy)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator

from console.durations import Duration, format_duration
from console.runbooks.actions.base import Action, ActionArgs, ActionContext, StepPlan


class WaitArgs(ActionArgs):
    duration: Duration
    reason: str = Field(default="", max_length=200)

    @field_validator("duration")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if value > timedelta(hours=1):
            raise ValueError("a wait is at most 1h")
        return value


class Wait(Action[WaitArgs]):
    name = "control.wait"
    description = "Wait a fixed time before the next step."
    Args = WaitArgs

    async def plan(self, args: WaitArgs, ctx: ActionContext) -> StepPlan:
        why = f" ({args.reason})" if args.reason else ""
        return StepPlan(
            summary=f"wait {format_duration(args.duration)}{why}", before=None, after=None
        )

    async def apply(self, args: WaitArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        await asyncio.sleep(args.duration.total_seconds())
        return None

    async def compensate(self, args: WaitArgs, ctx: ActionContext, before: Any, after: Any) -> Any:
        return None
