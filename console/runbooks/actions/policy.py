"""Block, unblock and budget actions on the Redis policy store."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from console.adapters.policy import Block, Budget, ClientId
from console.durations import Duration, format_duration
from console.runbooks.actions.base import Action, ActionArgs, ActionContext, StepPlan
from console.runbooks.resources import Resource

MIN_BLOCK = timedelta(minutes=1)


class ClientArgs(ActionArgs):
    client: ClientId


class BlockArgs(ClientArgs):
    ttl: Duration
    reason: str = Field(min_length=1, max_length=500)

    @field_validator("ttl")
    @classmethod
    def _long_enough(cls, value: timedelta) -> timedelta:
        # A block shorter than this is a typo (ttl: 0s was written as a 1 ms block).
        if value < MIN_BLOCK:
            raise ValueError(
                f"a block lasts at least {format_duration(MIN_BLOCK)} "
                f"(got {format_duration(value)})"
            )
        return value


class BudgetArgs(ClientArgs):
    qpm: int = Field(ge=0, le=1_000_000)


class RestoreBudgetArgs(ClientArgs):
    qpm: int | None = Field(default=None, ge=0, le=1_000_000)
    """Set this budget; without it, go back to the budget before the last change."""


class _ClientAction:
    """Mixed into the policy actions: each changes one client's policy."""

    resource_args: ClassVar[tuple[str, ...]] = ("client",)

    def changes(self, args: Mapping[str, Any]) -> list[Resource]:
        client = args.get("client")
        return [] if client is None else [Resource("client", str(client))]


def _dump(model: Block | Budget | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


class BlockClient(_ClientAction, Action[BlockArgs]):
    name = "policy.block_client"
    description = "Block a client at the gateways until the block expires (403)."
    Args = BlockArgs

    async def plan(self, args: BlockArgs, ctx: ActionContext) -> StepPlan:
        store = ctx.backends.policy
        current = await store.get_block(args.client)
        until = datetime.now(UTC) + args.ttl
        noop = current is not None and current.expires_at >= until - timedelta(seconds=1)
        if current is None:
            summary = f"block {args.client} for {format_duration(args.ttl)} (not blocked now)"
        elif noop:
            summary = f"{args.client} is already blocked until {current.expires_at:%H:%M:%S}Z"
        else:
            summary = (
                f"extend the block of {args.client} from {current.expires_at:%H:%M:%S}Z "
                f"to {until:%H:%M:%S}Z"
            )
        millis = int(args.ttl.total_seconds() * 1000)
        return StepPlan(
            summary=summary,
            before=_dump(current),
            after=_dump(current)
            if noop
            else {"client": args.client, "blocked": True, "expires_at": until.isoformat()},
            noop=noop,
            requests=[
                f"SET {store.block_key(args.client)} <block json> PX {millis}",
                f"PUBLISH {store.changes_channel} block {args.client}",
            ],
        )

    def fingerprint(self, plan: StepPlan) -> Any:
        return {"before": plan.before}  # the new expiry is now + ttl: it moves by itself

    async def apply(self, args: BlockArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        block = await ctx.backends.policy.block(
            args.client, args.ttl, args.reason, ctx.operator, ctx.run_id
        )
        return _dump(block)

    async def compensate(self, args: BlockArgs, ctx: ActionContext, before: Any, after: Any) -> Any:
        store = ctx.backends.policy
        if before is None:
            await store.unblock(args.client)
        else:
            await store.restore_block(Block.model_validate(before))
        return _dump(await store.get_block(args.client))


class UnblockClient(_ClientAction, Action[ClientArgs]):
    name = "policy.unblock_client"
    description = "Lift a client's block."
    Args = ClientArgs

    async def plan(self, args: ClientArgs, ctx: ActionContext) -> StepPlan:
        store = ctx.backends.policy
        current = await store.get_block(args.client)
        summary = (
            f"{args.client} is not blocked"
            if current is None
            else f"unblock {args.client} (blocked by {current.operator} until "
            f"{current.expires_at:%H:%M:%S}Z: {current.reason})"
        )
        return StepPlan(
            summary=summary,
            before=_dump(current),
            after=None,
            noop=current is None,
            requests=[
                f"DEL {store.block_key(args.client)}",
                f"PUBLISH {store.changes_channel} block {args.client}",
            ],
        )

    async def apply(self, args: ClientArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        await ctx.backends.policy.unblock(args.client)
        return None

    async def compensate(
        self, args: ClientArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        if before is not None:
            await ctx.backends.policy.restore_block(Block.model_validate(before))
        return _dump(await ctx.backends.policy.get_block(args.client))


class SetBudget(_ClientAction, Action[BudgetArgs]):
    name = "policy.set_budget"
    description = "Set a client's query budget in queries per minute (429 beyond it)."
    Args = BudgetArgs

    async def plan(self, args: BudgetArgs, ctx: ActionContext) -> StepPlan:
        store = ctx.backends.policy
        current = await store.get_budget(args.client)
        now = "the default budget" if current is None else f"{current.qpm} qpm"
        noop = current is not None and current.qpm == args.qpm
        return StepPlan(
            summary=(
                f"budget of {args.client} is already {args.qpm} qpm"
                if noop
                else f"set the budget of {args.client} to {args.qpm} qpm (now {now})"
            ),
            before=_dump(current),
            after=_dump(current) if noop else {"client": args.client, "qpm": args.qpm},
            noop=noop,
            requests=[
                f"SET {store.budget_key(args.client)} <budget json qpm={args.qpm}>",
                f"PUBLISH {store.changes_channel} budget {args.client}",
            ],
        )

    async def apply(self, args: BudgetArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        previous = Budget.model_validate(plan.before) if plan.before else None
        budget = await ctx.backends.policy.set_budget(
            args.client,
            args.qpm,
            ctx.operator,
            ctx.run_id,
            previous_qpm=_original_qpm(previous),
        )
        return _dump(budget)

    async def compensate(
        self, args: BudgetArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        store = ctx.backends.policy
        await store.restore_budget(Budget.model_validate(before) if before else None, args.client)
        return _dump(await store.get_budget(args.client))


def _original_qpm(previous: Budget | None) -> int | None:
    """The budget to go back to: kept across repeated changes, so restore means 'as before
    the incident', not 'one change back'."""
    if previous is None:
        return None
    return previous.previous_qpm if previous.previous_qpm is not None else previous.qpm


class RestoreBudget(_ClientAction, Action[RestoreBudgetArgs]):
    name = "policy.restore_budget"
    description = "Put a client's budget back as it was before it was lowered (or to qpm)."
    Args = RestoreBudgetArgs

    async def plan(self, args: RestoreBudgetArgs, ctx: ActionContext) -> StepPlan:
        store = ctx.backends.policy
        current = await store.get_budget(args.client)
        target = args.qpm if args.qpm is not None else (current.previous_qpm if current else None)
        if current is None and target is None:
            return StepPlan(
                summary=f"{args.client} already has the default budget",
                before=None,
                after=None,
                noop=True,
            )
        if target is None:
            now = current.qpm if current else "-"
            summary = f"remove the budget override of {args.client} ({now} qpm)"
            request = f"DEL {store.budget_key(args.client)}"
        else:
            summary = f"restore the budget of {args.client} to {target} qpm"
            request = f"SET {store.budget_key(args.client)} <budget json qpm={target}>"
        return StepPlan(
            summary=summary,
            before=_dump(current),
            after=None if target is None else {"client": args.client, "qpm": target},
            noop=current is not None and target is not None and current.qpm == target,
            requests=[request, f"PUBLISH {store.changes_channel} budget {args.client}"],
        )

    async def apply(self, args: RestoreBudgetArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        store = ctx.backends.policy
        if plan.after is None:
            await store.restore_budget(None, args.client)
            return None
        budget = await store.set_budget(
            args.client, int(plan.after["qpm"]), ctx.operator, ctx.run_id
        )
        return _dump(budget)

    async def compensate(
        self, args: RestoreBudgetArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        store = ctx.backends.policy
        await store.restore_budget(Budget.model_validate(before) if before else None, args.client)
        return _dump(await store.get_budget(args.client))
