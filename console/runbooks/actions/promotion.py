"""Promotion through the robustness gate: the ``robustness.gate`` precondition and the
``registry.promote`` action (candidate -> champion, old champion -> previous).

Both read the candidate's recorded evaluation from its registry tags and refuse a version that
has no usable record, misses ``[robustness]``, or is worse than the champion by more than
``max_regression``. The action judges again each time it plans (at plan, at the re-check before
apply, and just before it applies), so a record changed after the plan was confirmed cannot
slip through. There is no override flag: an operator who must promote anyway changes
``[robustness]`` in the config, and the ``robustness.record_gate`` step (``gate_audit``) writes
that change into the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from console.adapters.mlflow import API, ModelName, RegisteredModel, VersionNumber
from console.errors import ParameterError, PreconditionFailed
from console.runbooks.actions.base import Action, ActionArgs, ActionContext, Check, StepPlan
from console.runbooks.actions.robustness_facts import (
    VersionRobustness,
    champion_robustness,
    no_regression_check,
    refusal,
    settings_gate_json,
    version_robustness,
)
from console.runbooks.resources import Resource


class PromoteArgs(ActionArgs):
    model: ModelName
    version: VersionNumber


@dataclass(frozen=True)
class _Assessment:
    model: RegisteredModel
    candidate: VersionRobustness
    champion: VersionRobustness | None
    problem: str | None
    unchecked: str | None = None
    """Why the candidate was not compared with the champion (``no_regression_check``)."""


async def _assess(args: PromoteArgs, ctx: ActionContext) -> _Assessment:
    registry = ctx.backends.registry
    found = await registry.get_model(args.model)
    if found is None:
        raise ParameterError(
            f"model {args.model!r} is not in the registry at {ctx.settings.mlflow.url}"
        )
    candidate = await version_robustness(registry, ctx.settings, args.model, args.version)
    if candidate.status and candidate.status != "READY":
        raise PreconditionFailed(f"{candidate.label} is {candidate.status}, not READY")
    current = found.aliases.get("champion")
    champion = await champion_robustness(registry, ctx.settings, args.model, current, args.version)
    gate = ctx.settings.robustness
    problem = refusal(gate, candidate, champion)
    return _Assessment(
        found, candidate, champion, problem, no_regression_check(gate, candidate, champion)
    )


class RobustnessGate(Check[PromoteArgs]):
    name = "robustness.gate"
    description = (
        "The version's recorded evaluation (aml-console eval) is for its artifact, passes "
        "[robustness], and is not worse than the champion's by more than max_regression."
    )
    Args = PromoteArgs

    async def check(self, args: PromoteArgs, ctx: ActionContext) -> str | None:
        return (await _assess(args, ctx)).problem


def _aliases(model: str, champion: str | None, previous: str | None) -> dict[str, Any]:
    return {"model": model, "champion": champion, "previous": previous}


class Promote(Action[PromoteArgs]):
    name = "registry.promote"
    description = (
        "Make a version champion (the old champion becomes previous), if its recorded "
        "robustness passes the gate."
    )
    Args = PromoteArgs
    resource_args: ClassVar[tuple[str, ...]] = ("model",)

    def changes(self, args: Mapping[str, Any]) -> list[Resource]:
        model = args.get("model")
        return [] if model is None else [Resource("model", str(model))]

    async def plan(self, args: PromoteArgs, ctx: ActionContext) -> StepPlan:
        found = await _assess(args, ctx)
        if found.problem:
            raise PreconditionFailed(found.problem)
        aliases = found.model.aliases
        champion, previous = aliases.get("champion"), aliases.get("previous")
        noop = champion == args.version
        if noop:
            after = _aliases(args.model, champion, previous)
            move = f"{args.model} v{args.version} is already champion"
        else:
            after = _aliases(args.model, args.version, champion or previous)
            move = f"promote {args.model} v{args.version} to champion" + (
                f" (v{champion} -> previous)" if champion else " (no champion now)"
            )
        after["robustness"] = {
            "candidate": found.candidate.to_json(),
            "champion": found.champion.to_json() if found.champion else None,
            "regression_check": found.unchecked
            or ("compared with the champion" if found.champion else "no other champion"),
        }
        after["gate"] = settings_gate_json(ctx.settings)
        theirs = (
            f"champion v{found.champion.version}: {found.champion.text()}"
            if found.champion
            else "no other champion to compare with"
        )
        if found.unchecked:
            theirs = f"{theirs}; {found.unchecked}"
        url = f"{ctx.settings.mlflow.url}{API}/registered-models/alias"
        requests: list[str] = []
        if not noop:
            moves = [("previous", champion)] if champion else []
            for alias, version in [*moves, ("champion", args.version)]:
                requests.append(
                    f'POST {url} {{"name": "{args.model}", "alias": "{alias}", '
                    f'"version": "{version}"}}'
                )
        return StepPlan(
            summary=f"{move}; candidate v{args.version}: {found.candidate.text()}; {theirs}",
            before=_aliases(args.model, champion, previous),
            after=after,
            noop=noop,
            requests=requests,
        )

    async def apply(self, args: PromoteArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        registry = ctx.backends.registry
        champion_before = plan.before["champion"]
        if champion_before is not None:
            await registry.set_alias(args.model, "previous", champion_before)
        await registry.set_alias(args.model, "champion", args.version)
        return plan.after

    async def compensate(
        self, args: PromoteArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        registry = ctx.backends.registry
        model = before["model"]
        for alias in ("champion", "previous"):
            version = before[alias]
            if version is None:
                await registry.delete_alias(model, alias)
            else:
                await registry.set_alias(model, alias, version)
        return _aliases(
            model,
            await registry.get_alias(model, "champion"),
            await registry.get_alias(model, "previous"),
        )
