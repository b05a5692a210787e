"""Plans: what each step of a run will change, read from the real systems before anything is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from console.errors import ConsoleError, ParameterError, PreconditionFailed
from console.runbooks.actions import ACTIONS, CHECKS, ActionContext, StepPlan
from console.runbooks.loader import LoadedRunbook
from console.runbooks.model import StepSpec
from console.runbooks.params import Redactor, jsonable, public_params
from console.runbooks.template import TemplateError, references, render


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
    steps: list[PlannedStep]
    operator: str
    environment: str

    @property
    def public_params(self) -> dict[str, Any]:
        public: dict[str, Any] = jsonable(public_params(self.loaded.runbook, self.values))
        return public

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "runbook": self.loaded.runbook.name,
            "target": self.target,
            "operator": self.operator,
            "environment": self.environment,
            "params": self.public_params,
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


def validate_args(model: Any, data: Any, where: str, redactor: Redactor) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(args)'}: {e['msg']}" for e in exc.errors()
        ]
        raise ParameterError(redactor.text(f"{where}: " + "; ".join(problems))) from None


def redact_plan(plan: StepPlan, redactor: Redactor) -> StepPlan:
    plan.summary = redactor.text(plan.summary)
    plan.requests = redactor(plan.requests)
    return plan


async def make_plan(
    loaded: LoadedRunbook, values: dict[str, Any], redactor: Redactor, ctx: ActionContext
) -> RunPlan:
    """Check preconditions and plan every step whose arguments are known now."""
    runbook = loaded.runbook
    variables = scope(values, ctx, {})
    target = str(render_checked(runbook.target, "target", variables, redactor))
    for pre in runbook.preconditions:
        check = CHECKS[pre.check]
        where = f"precondition {pre.check}"
        args = validate_args(
            check.Args, render_checked(pre.with_, where, variables, redactor), where, redactor
        )
        problem = await check.check(args, ctx)
        if problem:
            raise PreconditionFailed(f"{where} failed: {pre.message or redactor.text(problem)}")
    steps = []
    for spec in runbook.steps:
        depends = sorted(
            {r.split(".")[1] for r in references(spec.with_) if r.startswith("steps.")}
        )
        if depends:
            steps.append(PlannedStep(spec, redactor(spec.with_), None, depends))
            continue
        steps.append(await plan_step(spec, variables, redactor, ctx))
    return RunPlan(
        run_id=ctx.run_id,
        loaded=loaded,
        values=values,
        redactor=redactor,
        target=target,
        steps=steps,
        operator=ctx.operator,
        environment=ctx.settings.environment,
    )


async def plan_step(
    spec: StepSpec, variables: dict[str, Any], redactor: Redactor, ctx: ActionContext
) -> PlannedStep:
    action = ACTIONS[spec.action]
    where = f"step {spec.id}"
    rendered = render_checked(spec.with_, where, variables, redactor)
    args = validate_args(action.Args, rendered, where, redactor)
    try:
        plan = await action.plan(args, ctx)
    except ConsoleError as exc:
        exc.message = redactor.text(exc.message)
        raise
    public = redactor(jsonable(rendered))
    return PlannedStep(
        spec, public if isinstance(public, dict) else {}, redact_plan(plan, redactor)
    )
