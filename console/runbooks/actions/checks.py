"""Preconditions a runbook can require before it plans anything."""

from __future__ import annotations

from console.adapters.mlflow import AliasName, ModelName
from console.runbooks.actions.base import ActionArgs, ActionContext, Check


class ModelArgs(ActionArgs):
    model: ModelName


class AliasArgs(ModelArgs):
    alias: AliasName


class ModelExists(Check[ModelArgs]):
    name = "registry.model_exists"
    description = "The model is in the registry."
    Args = ModelArgs

    async def check(self, args: ModelArgs, ctx: ActionContext) -> str | None:
        if await ctx.backends.registry.get_model(args.model) is None:
            return f"model {args.model!r} is not in the registry at {ctx.settings.mlflow.url}"
        return None


class AliasSet(Check[AliasArgs]):
    name = "registry.alias_set"
    description = "The model has this alias."
    Args = AliasArgs

    async def check(self, args: AliasArgs, ctx: ActionContext) -> str | None:
        model = await ctx.backends.registry.get_model(args.model)
        if model is None:
            return f"model {args.model!r} is not in the registry at {ctx.settings.mlflow.url}"
        if args.alias not in model.aliases:
            have = ", ".join(f"{a}=v{v}" for a, v in model.aliases.items()) or "none"
            return f"{args.model} has no alias {args.alias!r} (aliases: {have})"
        return None
