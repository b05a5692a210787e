"""Preconditions a runbook can require before it plans anything."""

from __future__ import annotations

from pydantic import field_validator

from console.adapters.mlflow import check_alias, check_model_name
from console.runbooks.actions.base import ActionArgs, ActionContext, Check


class ModelArgs(ActionArgs):
    model: str

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return check_model_name(value)


class AliasArgs(ModelArgs):
    alias: str

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        return check_alias(value)


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
