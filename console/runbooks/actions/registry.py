"""Model registry actions (MLflow aliases): set an alias, roll back the champion (promotion
through the robustness gate: ``promotion``).

``champion`` (what gateways serve) moves only through ``registry.promote`` (the gate) and
``registry.rollback``; ``previous`` only through ``registry.promote`` (to the champion it
replaces). ``registry.set_alias`` refuses both: moving champion with it would skip the gate, and
so would pointing previous at any version and rolling back to it.

A rollback to ``previous`` shows the target version's recorded robustness in its plan and does
not refuse a target that misses the gate or was never evaluated: it is an incident action that
takes the served model back to the one that served before it, and refusing it would leave the
version being rolled away from (a poisoned one, say) serving. What the target's record says, a
miss or ``not evaluated``, is in the plan the operator confirms and in the step's audit
records. A rollback of champion to any other alias (``to_alias=candidate``) goes to a version
``set_alias`` may have pointed that alias at, one that need never have served: the gate judges
it as it judges a promotion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from console.adapters.mlflow import API, AliasName, ModelName, VersionNumber
from console.errors import ParameterError, PreconditionFailed
from console.runbooks.actions.base import Action, ActionArgs, ActionContext, StepPlan
from console.runbooks.actions.robustness_facts import (
    champion_robustness,
    gate_json,
    gate_verdict,
    refusal,
    version_robustness,
)
from console.runbooks.resources import Resource

CHAMPION = "champion"
ROLLBACK_TO = "previous"
GATED_ALIASES = (CHAMPION, ROLLBACK_TO)
"""Aliases ``registry.set_alias`` never moves (module docstring)."""


def gated_alias_refusal(action: str, model: str, alias: str) -> str | None:
    """Why ``action`` may not move ``model@alias`` (one line naming the runbook that may), None
    for an alias it may move (case aside: the registry may not tell ``Champion`` apart)."""
    alias = alias.lower()
    if alias == CHAMPION:
        return (
            f"{action} does not move {model}@champion: promote a version through the robustness "
            f"gate (aml-console runbook run promote-model -p model={model} -p version=N), or "
            f"roll back in an incident (rollback-model -p model={model})"
        )
    if alias == ROLLBACK_TO:
        return (
            f"{action} does not move {model}@previous: rollback-model goes there without the "
            f"robustness gate, so only promote-model moves it (to the champion it replaces)"
        )
    return None


class SetAliasArgs(ActionArgs):
    model: ModelName
    alias: AliasName
    """Required (it was ``champion`` by default, which this action no longer moves)."""
    version: VersionNumber


class RollbackArgs(ActionArgs):
    model: ModelName
    alias: AliasName = CHAMPION
    to_alias: AliasName = ROLLBACK_TO


class _ModelAction:
    """Mixed into the registry actions: each moves an alias of one model."""

    resource_args: ClassVar[tuple[str, ...]] = ("model",)

    def changes(self, args: Mapping[str, Any]) -> list[Resource]:
        model = args.get("model")
        return [] if model is None else [Resource("model", str(model))]


def _alias_state(model: str, alias: str, version: str | None) -> dict[str, Any]:
    return {"model": model, "alias": alias, "version": version}


async def _plan_move(
    ctx: ActionContext, model: str, alias: str, version: str, why: str
) -> StepPlan:
    registry = ctx.backends.registry
    found = await registry.get_model(model)
    if found is None:
        raise ParameterError(f"model {model!r} is not in the registry at {ctx.settings.mlflow.url}")
    target = await registry.get_version(model, version)
    if target is None:
        raise ParameterError(f"model {model!r} has no version {version}")
    if target.status and target.status != "READY":
        raise PreconditionFailed(f"{model} v{version} is {target.status}, not READY")
    current = found.aliases.get(alias)
    noop = current == version
    summary = (
        f"{model}@{alias} is already v{version}"
        if noop
        else f"move {model}@{alias} from v{current or '(unset)'} to v{version}{why}"
    )
    return StepPlan(
        summary=summary,
        before=_alias_state(model, alias, current),
        after=_alias_state(model, alias, version),
        noop=noop,
        requests=[
            f"POST {ctx.settings.mlflow.url}{API}/registered-models/alias "
            f'{{"name": "{model}", "alias": "{alias}", "version": "{version}"}}'
        ],
    )


async def _with_robustness(
    ctx: ActionContext, plan: StepPlan, model: str, version: str
) -> StepPlan:
    """``plan`` with the target version's recorded robustness: in its summary (figures, a
    gate miss, or ``not evaluated``) and in ``after`` (so in the audit records)."""
    facts = await version_robustness(ctx.backends.registry, ctx.settings, model, version)
    missed = gate_verdict(ctx.settings.robustness, facts)
    verdict = f"; MISSES THE GATE: {missed}" if missed else ""
    plan.summary = f"{plan.summary}; v{version}: {facts.text()}{verdict}"
    plan.after = {**plan.after, "robustness": {**facts.to_json(), "gate_miss": missed}}
    return plan


async def _gated(
    ctx: ActionContext, plan: StepPlan, model: str, version: str, current: str | None, via: str
) -> StepPlan:
    """``plan`` (champion -> ``version``, named by alias ``via``, not previous) if the gate
    passes ``version`` as it would pass a promotion over ``current``; PreconditionFailed (one
    line naming the figure) if not. Judged again at every plan, as ``registry.promote`` is."""
    registry, settings = ctx.backends.registry, ctx.settings
    facts = await version_robustness(registry, settings, model, version)
    champion = await champion_robustness(registry, settings, model, current, version)
    problem = refusal(settings.robustness, facts, champion)
    if problem:
        raise PreconditionFailed(
            f"{problem} (a rollback to {via!r}, not previous, goes through the robustness gate)"
        )
    plan.summary = f"{plan.summary}; v{version}: {facts.text()}; passes the robustness gate"
    plan.after = {
        **plan.after,
        "robustness": {**facts.to_json(), "gate_miss": None},
        "gate": gate_json(settings.robustness),
    }
    return plan


async def _restore_alias(ctx: ActionContext, before: Any) -> Any:
    registry = ctx.backends.registry
    model, alias, version = before["model"], before["alias"], before["version"]
    if version is None:
        await registry.delete_alias(model, alias)
    else:
        await registry.set_alias(model, alias, version)
    return _alias_state(model, alias, await registry.get_alias(model, alias))


class SetAlias(_ModelAction, Action[SetAliasArgs]):
    name = "registry.set_alias"
    description = "Point a model alias (candidate, ...; not champion or previous) at a version."
    Args = SetAliasArgs

    async def plan(self, args: SetAliasArgs, ctx: ActionContext) -> StepPlan:
        refused = gated_alias_refusal(self.name, args.model, args.alias)
        if refused:
            raise PreconditionFailed(refused)
        return await _plan_move(ctx, args.model, args.alias, args.version, "")

    async def apply(self, args: SetAliasArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        await ctx.backends.registry.set_alias(args.model, args.alias, args.version)
        return _alias_state(args.model, args.alias, args.version)

    async def compensate(
        self, args: SetAliasArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        return await _restore_alias(ctx, before)


class Rollback(_ModelAction, Action[RollbackArgs]):
    name = "registry.rollback"
    description = "Move the champion alias to the version the previous alias points at."
    Args = RollbackArgs

    async def plan(self, args: RollbackArgs, ctx: ActionContext) -> StepPlan:
        if args.alias.lower() == ROLLBACK_TO:
            raise PreconditionFailed(
                gated_alias_refusal(self.name, args.model, args.alias) or args.alias
            )
        registry = ctx.backends.registry
        found = await registry.get_model(args.model)
        if found is None:
            raise ParameterError(
                f"model {args.model!r} is not in the registry at {ctx.settings.mlflow.url}"
            )
        target = found.aliases.get(args.to_alias)
        if target is None:
            raise PreconditionFailed(
                f"{args.model} has no {args.to_alias!r} alias to roll back to "
                f"(aliases: {', '.join(f'{a}=v{v}' for a, v in found.aliases.items()) or 'none'})"
            )
        why = f" (the {args.to_alias} version)"
        plan = await _plan_move(ctx, args.model, args.alias, target, why)
        if args.alias.lower() == CHAMPION and args.to_alias != ROLLBACK_TO and not plan.noop:
            current = found.aliases.get(CHAMPION)
            return await _gated(ctx, plan, args.model, target, current, args.to_alias)
        return await _with_robustness(ctx, plan, args.model, target)

    async def apply(self, args: RollbackArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        version = plan.after["version"]
        await ctx.backends.registry.set_alias(args.model, args.alias, version)
        # The outcome carries what the plan showed of the target (figures, the gate applied).
        return {**plan.after, **_alias_state(args.model, args.alias, version)}

    async def compensate(
        self, args: RollbackArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        return await _restore_alias(ctx, before)
