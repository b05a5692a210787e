"""Output hardening on the Redis policy store: one client's answers reduced (label-only,
top1, rounded) until it expires, undone by ``unharden_outputs`` or by its compensation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, field_validator

from console.adapters.policy import Hardening, OutputMode
from console.durations import Duration, format_duration
from console.runbooks.actions.base import Action, ActionContext, StepPlan
from console.runbooks.actions.policy import (
    ClientAction,
    ClientArgs,
    at_least_a_minute,
    dump_policy,
)


class HardenArgs(ClientArgs):
    mode: OutputMode
    decimals: int = Field(default=2, ge=0, le=6)
    ttl: Duration

    @field_validator("ttl")
    @classmethod
    def _long_enough(cls, value: timedelta) -> timedelta:
        return at_least_a_minute("hardening", value)


class HardenOutputs(ClientAction, Action[HardenArgs]):
    name = "policy.harden_outputs"
    description = (
        "Reduce a client's answers until it expires: label-only, top1 (top class and its "
        "probability) or rounded (probabilities to decimals)."
    )
    Args = HardenArgs

    async def plan(self, args: HardenArgs, ctx: ActionContext) -> StepPlan:
        store = ctx.backends.policy
        current = await store.get_hardening(args.client)
        until = datetime.now(UTC) + args.ttl
        wanted = Hardening(
            client=args.client,
            mode=args.mode,
            decimals=args.decimals,
            operator=ctx.operator,
            run_id=ctx.run_id,
            created_at=datetime.now(UTC),
            expires_at=until,
        )
        same = current is not None and current.header == wanted.header
        noop = same and current is not None and current.expires_at >= until - timedelta(seconds=1)
        if current is None:
            summary = (
                f"harden the outputs of {args.client} to {wanted.label} for "
                f"{format_duration(args.ttl)} (full answers now)"
            )
        elif noop:
            summary = (
                f"{args.client} already gets {current.label} until {current.expires_at:%H:%M:%S}Z"
            )
        else:
            summary = (
                f"harden the outputs of {args.client}: {current.label} until "
                f"{current.expires_at:%H:%M:%S}Z -> {wanted.label} until {until:%H:%M:%S}Z"
            )
        millis = int(args.ttl.total_seconds() * 1000)
        after = {
            "client": args.client,
            "mode": args.mode,
            "output": wanted.header,
            "expires_at": until.isoformat(),
        }
        return StepPlan(
            summary=summary,
            before=dump_policy(current),
            after=dump_policy(current) if noop else after,
            noop=noop,
            requests=[
                f"SET {store.hardening_key(args.client)} <hardening json {wanted.header}> "
                f"PX {millis}",
                f"PUBLISH {store.changes_channel} hardening {args.client}",
            ],
        )

    def fingerprint(self, plan: StepPlan) -> Any:
        return {"before": plan.before}  # the new expiry is now + ttl: it moves by itself

    async def apply(self, args: HardenArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        hardening = await ctx.backends.policy.harden(
            args.client, args.mode, args.decimals, args.ttl, ctx.operator, ctx.run_id
        )
        return dump_policy(hardening)

    async def compensate(
        self, args: HardenArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        store = ctx.backends.policy
        if before is None:
            await store.unharden(args.client)
        else:
            await store.restore_hardening(Hardening.model_validate(before))
        return dump_policy(await store.get_hardening(args.client))


class UnhardenOutputs(ClientAction, Action[ClientArgs]):
    name = "policy.unharden_outputs"
    description = "Lift a client's output hardening: full answers again."
    Args = ClientArgs

    async def plan(self, args: ClientArgs, ctx: ActionContext) -> StepPlan:
        store = ctx.backends.policy
        current = await store.get_hardening(args.client)
        summary = (
            f"{args.client} gets full answers already"
            if current is None
            else f"lift the output hardening of {args.client} ({current.label}, by "
            f"{current.operator} until {current.expires_at:%H:%M:%S}Z)"
        )
        return StepPlan(
            summary=summary,
            before=dump_policy(current),
            after=None,
            noop=current is None,
            requests=[
                f"DEL {store.hardening_key(args.client)}",
                f"PUBLISH {store.changes_channel} hardening {args.client}",
            ],
        )

    async def apply(self, args: ClientArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        await ctx.backends.policy.unharden(args.client)
        return None

    async def compensate(
        self, args: ClientArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        if before is not None:
            await ctx.backends.policy.restore_hardening(Hardening.model_validate(before))
        return dump_policy(await ctx.backends.policy.get_hardening(args.client))
