"""Plans: what each step of a run will change, read from the real systems before anything is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from console import acl
from console.errors import ConsoleError, ParameterError, PreconditionFailed
from console.runbooks.actions import ACTIONS, CHECKS, ActionContext, StepPlan
from console.runbooks.arg_checks import arg_context, messages
from console.runbooks.leasing import run_leases
from console.runbooks.loader import LoadedRunbook
from console.runbooks.model import StepSpec
from console.runbooks.params import Redactor, jsonable, public_params
from console.runbooks.template import TemplateError, references, render
from console.urls import redact_urls_in


@dataclass
class PlannedStep:
    spec: StepSpec
    arguments: dict[str, Any]
    """Rendered and redacted: what the screen and the audit log may show."""
    plan: StepPlan | None
    """None when the step's arguments come from an earlier step's result."""
    depends_on: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> Any:
        if self.plan is None:
            return None
        return jsonable(ACTIONS[self.spec.action].fingerprint(self.plan))

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        comp = self.spec.compensate
        return {
            "id": self.spec.id,
            "action": self.spec.action,
            "arguments": self.arguments,
            "summary": plan.summary if plan else f"planned when it runs (uses {self.depends_on})",
            "before": plan.before if plan else None,
            "after": plan.after if plan else None,
            "noop": plan.noop if plan else False,
            "requests": plan.requests if plan else [],
            "timeout": self.spec.timeout,
            "retries": self.spec.retries,
            "compensate": comp if isinstance(comp, str) else comp.action,
        }


@dataclass
class RunPlan:
    run_id: str
    loaded: LoadedRunbook
    values: dict[str, Any]
    redactor: Redactor
    target: str
    """The target's resources, joined by ``, ``."""
    steps: list[PlannedStep]
    operator: str
    environment: str
    leases: list[str] = field(default_factory=list)
    """What the run leases before its first step: the target and every resource a step
    changes, sorted."""

    @property
    def public_params(self) -> dict[str, Any]:
        public: dict[str, Any] = jsonable(public_params(self.loaded.runbook, self.values))
        return public

    @property
    def shown_params(self) -> dict[str, Any]:
        """``public_params`` with URL credentials cut out too: for the screen only (the run
        state keeps the values, which `resume` needs)."""
        shown: dict[str, Any] = public_arguments(self.public_params, self.redactor)
        return shown

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "runbook": self.loaded.runbook.name,
            "target": self.target,
            "leases": self.leases,
            "operator": self.operator,
            "environment": self.environment,
            "params": self.shown_params,
            "steps": [s.to_dict() for s in self.steps],
        }


def scope(values: dict[str, Any], ctx: ActionContext, steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "params": values,
        "steps": steps,
        "run": {
            "id": ctx.run_id,
            "operator": ctx.operator,
            "environment": ctx.settings.environment,
        },
    }


def render_checked(value: Any, where: str, variables: dict[str, Any], redactor: Redactor) -> Any:
    try:
        return render(value, variables)
    except TemplateError as exc:
        raise ParameterError(f"{where}: {redactor.text(exc)}") from None


def validate_args(model: Any, data: Any, where: str, redactor: Redactor, ctx: ActionContext) -> Any:
    """``data`` as ``model``, checked as ``runbook validate`` checks literal values (same
    messages), and against the settings (allowed hosts)."""
    try:
        return model.model_validate(data, context=arg_context(ctx.settings))
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, loc)) or '(args)'}: {why}" for loc, why in messages(exc)]
        raise ParameterError(redactor.text(f"{where}: " + "; ".join(problems))) from None


def public_arguments(value: Any, redactor: Redactor) -> Any:
    """Arguments as the screen, the audit log and the run state may hold them: secrets
    redacted, and the credentials of every URL in them cut out."""
    value = redactor(value)
    if isinstance(value, str):
        return redact_urls_in(value)
    if isinstance(value, dict):
        return {key: public_arguments(item, redactor) for key, item in value.items()}
    if isinstance(value, list):
        return [public_arguments(item, redactor) for item in value]
    return value


def redact_plan(plan: StepPlan, redactor: Redactor) -> StepPlan:
    plan.summary = redactor.text(plan.summary)
    plan.requests = [redactor.text(request) for request in plan.requests]
    return plan


async def make_plan(
    loaded: LoadedRunbook, values: dict[str, Any], redactor: Redactor, ctx: ActionContext
) -> RunPlan:
    """Check preconditions and plan every step whose arguments are known now."""
    runbook = loaded.runbook
    variables = scope(values, ctx, {})
    targets, leases = run_leases(runbook, variables, redactor)
    acl.check(ctx.settings.acl.path, ctx.operator, "run", runbook.name, runbook.tags, targets)
    for pre in runbook.preconditions:
        check = CHECKS[pre.check]
        where = f"precondition {pre.check}"
        rendered = render_checked(pre.with_, where, variables, redactor)
        args = validate_args(check.Args, rendered, where, redactor, ctx)
        problem = await check.check(args, ctx)
        if problem:
            raise PreconditionFailed(f"{where} failed: {pre.message or redactor.text(problem)}")
    steps = []
    for spec in runbook.steps:
        depends = sorted(
            {r.split(".")[1] for r in references(spec.with_) if r.startswith("steps.")}
        )
        if depends:
            steps.append(PlannedStep(spec, public_arguments(spec.with_, redactor), None, depends))
            continue
        steps.append(await plan_step(spec, variables, redactor, ctx))
    return RunPlan(
        run_id=ctx.run_id,
        loaded=loaded,
        values=values,
        redactor=redactor,
        target=", ".join(targets),
        steps=steps,
        operator=ctx.operator,
        environment=ctx.settings.environment,
        leases=leases,
    )


async def plan_step(
    spec: StepSpec, variables: dict[str, Any], redactor: Redactor, ctx: ActionContext
) -> PlannedStep:
    action = ACTIONS[spec.action]
    where = f"step {spec.id}"
    rendered = render_checked(spec.with_, where, variables, redactor)
    args = validate_args(action.Args, rendered, where, redactor, ctx)
    try:
        plan = await action.plan(args, ctx)
    except ConsoleError as exc:
        exc.message = redactor.text(exc.message)
        raise
    public = public_arguments(jsonable(rendered), redactor)
    return PlannedStep(
        spec, public if isinstance(public, dict) else {}, redact_plan(plan, redactor)
    )
