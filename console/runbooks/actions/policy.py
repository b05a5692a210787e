"""Block, unblock and budget actions on the Redis policy store (output hardening:
``hardening.py``), and what every per-client policy action shares."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from console.adapters.policy import (
    Block,
    Budget,
    BudgetMode,
    ClientId,
    Hardening,
    PolicyStore,
)
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
        return at_least_a_minute("block", value)


def at_least_a_minute(what: str, ttl: timedelta) -> timedelta:
    # Shorter than this is a typo (ttl: 0s was written as a 1 ms block).
    if ttl < MIN_BLOCK:
        raise ValueError(
            f"a {what} lasts at least {format_duration(MIN_BLOCK)} (got {format_duration(ttl)})"
        )
    return ttl


class BudgetArgs(ClientArgs):
    qpm: int = Field(ge=0, le=1_000_000)
    mode: BudgetMode = "enforce"
    """``shadow``: refuse nothing, count what this budget would refuse (try before enforcing)."""


class RestoreBudgetArgs(ClientArgs):
    qpm: int | None = Field(default=None, ge=0, le=1_000_000)
    """Set this budget; without it, go back to the budget before the last change."""


class ClientAction:
    """Mixed into the policy actions: each changes one client's policy."""

    resource_args: ClassVar[tuple[str, ...]] = ("client",)

    def changes(self, args: Mapping[str, Any]) -> list[Resource]:
        client = args.get("client")
        return [] if client is None else [Resource("client", str(client))]


def dump_policy(model: Block | Budget | Hardening | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


class BlockClient(ClientAction, Action[BlockArgs]):
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
            before=dump_policy(current),
            after=dump_policy(current)
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
        return dump_policy(block)

    async def compensate(self, args: BlockArgs, ctx: ActionContext, before: Any, after: Any) -> Any:
        store = ctx.backends.policy
        if before is None:
            await store.unblock(args.client)
        else:
            await store.restore_block(Block.model_validate(before))
        return dump_policy(await store.get_block(args.client))


class UnblockClient(ClientAction, Action[ClientArgs]):
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
            before=dump_policy(current),
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
        return dump_policy(await ctx.backends.policy.get_block(args.client))


class SetBudget(ClientAction, Action[BudgetArgs]):
    name = "policy.set_budget"
    description = (
        "Set a client's query budget in queries per minute (429 beyond it), or try it as a "
        "shadow budget that refuses nothing (mode: shadow)."
    )
    Args = BudgetArgs

    async def plan(self, args: BudgetArgs, ctx: ActionContext) -> StepPlan:
        store = ctx.backends.policy
        current = await store.get_budget(args.client)
        noop = current is not None and current.qpm == args.qpm and current.mode == args.mode
        after: dict[str, Any] = {"client": args.client, "qpm": args.qpm, "mode": args.mode}
        if args.mode == "shadow":
            after["enforced_qpm"] = _enforced_now(current)
        return StepPlan(
            summary=_budget_summary(args, current, noop) + await _shadow_figures(store, current),
            before=dump_policy(current),
            after=dump_policy(current) if noop else after,
            noop=noop,
            requests=[
                f"SET {store.budget_key(args.client)} <budget json qpm={args.qpm} "
                f"mode={args.mode}>",
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
            mode=args.mode,
            enforced_qpm=_enforced_now(previous),
        )
        return dump_policy(budget)

    async def compensate(
        self, args: BudgetArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        store = ctx.backends.policy
        await store.restore_budget(Budget.model_validate(before) if before else None, args.client)
        return dump_policy(await store.get_budget(args.client))


def _budget_summary(args: BudgetArgs, current: Budget | None, noop: bool) -> str:
    client, new = args.client, f"{args.qpm} qpm"
    if noop:
        return f"budget of {client} is already {current.label if current else new}"
    if args.mode == "shadow":
        enforced = _enforced_now(current)
        stays = "the default budget" if enforced is None else f"the enforced {enforced} qpm"
        return (
            f"try a shadow budget of {new} for {client}: refuses nothing, counts what it "
            f"would refuse ({stays} stays in force)"
        )
    if current is not None and current.shadow:
        return f"enforce the budget of {client}: shadow {current.qpm} qpm -> enforce {new}"
    now = "the default budget" if current is None else current.label
    return f"set the budget of {client} to {new} (now {now})"


async def _shadow_figures(store: PolicyStore, current: Budget | None) -> str:
    """``; shadow: would have refused 37% (1,204 of 3,250)`` when a shadow budget runs."""
    if current is None or not current.shadow:
        return ""
    totals = (await store.shadow_totals([current])).get(current.client)
    if totals is None:
        return ""
    return f"; shadow: would have refused {totals.text()} since {current.set_at:%H:%M}Z"


def _enforced_now(current: Budget | None) -> int | None:
    """The enforced budget a new shadow budget leaves in force (None: the default)."""
    return None if current is None else current.enforced


def _original_qpm(previous: Budget | None) -> int | None:
    """The budget to go back to: kept across repeated changes, so restore means 'as before
    the incident', not 'one change back'."""
    if previous is None:
        return None
    if previous.previous_qpm is not None:
        return previous.previous_qpm
    return previous.enforced  # a shadow budget's own qpm was never in force


class RestoreBudget(ClientAction, Action[RestoreBudgetArgs]):
    name = "policy.restore_budget"
    description = "Put a client's budget back as it was before it was lowered (or to qpm)."
    Args = RestoreBudgetArgs

    async def plan(self, args: RestoreBudgetArgs, ctx: ActionContext) -> StepPlan:
        store = ctx.backends.policy
        current = await store.get_budget(args.client)
        target = args.qpm if args.qpm is not None else _restore_target(current)
        if current is None and target is None:
            return StepPlan(
                summary=f"{args.client} already has the default budget",
                before=None,
                after=None,
                noop=True,
            )
        now = current.label if current else "-"
        if target is None:
            summary = f"remove the budget override of {args.client} ({now})"
            request = f"DEL {store.budget_key(args.client)}"
        else:
            summary = f"restore the budget of {args.client} to {target} qpm (now {now})"
            request = f"SET {store.budget_key(args.client)} <budget json qpm={target}>"
        after: dict[str, Any] | None = None
        if target is not None:
            after = {"client": args.client, "qpm": target, "mode": "enforce"}
            if current is not None and current.shadow and current.previous_qpm != target:
                after["previous_qpm"] = current.previous_qpm
        return StepPlan(
            summary=summary + await _shadow_figures(store, current),
            before=dump_policy(current),
            after=after,
            noop=current is not None
            and not current.shadow
            and target is not None
            and current.qpm == target,
            requests=[request, f"PUBLISH {store.changes_channel} budget {args.client}"],
        )

    async def apply(self, args: RestoreBudgetArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        store = ctx.backends.policy
        if plan.after is None:
            await store.restore_budget(None, args.client)
            return None
        budget = await store.set_budget(
            args.client,
            int(plan.after["qpm"]),
            ctx.operator,
            ctx.run_id,
            previous_qpm=plan.after.get("previous_qpm"),
        )
        return dump_policy(budget)

    async def compensate(
        self, args: RestoreBudgetArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        store = ctx.backends.policy
        await store.restore_budget(Budget.model_validate(before) if before else None, args.client)
        return dump_policy(await store.get_budget(args.client))


def _restore_target(current: Budget | None) -> int | None:
    """Without a qpm: an enforced budget goes back to the one before the console changed it;
    a shadow budget is removed, leaving the budget it left in force."""
    if current is None:
        return None
    return current.enforced_qpm if current.shadow else current.previous_qpm
