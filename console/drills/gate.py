"""A drill's gate check (``gate:`` in a scenario): after an attack round, plan the runbook the
attack should not get past (``promote-model`` of the version it registered) and say whether
the plan was refused, and why. It is only planned, never run, so the check changes nothing.

The timeline event (``gate-refused``...) names the reason; a scenario's ``expect_reason`` (a
substring) must be in it, so a gate refused for the wrong reason (``no usable recorded
evaluation`` where a recorded figure should have missed) is a drill error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from console.config import Settings
from console.drills.scenario import GateSpec
from console.errors import ConsoleError, PreconditionFailed
from console.runbooks.template import TemplateError, render


@dataclass(frozen=True)
class GateResult:
    outcome: str
    """``refused`` (a precondition failed), ``allowed`` (it planned), ``error`` (neither)."""
    detail: str
    """The timeline event's text: the runbook, its parameters, the outcome and its reason."""
    problem: str | None
    """Set when the outcome is not the scenario's ``expect``, or its reason lacks
    ``expect_reason``: a drill error."""
    reason: str = ""
    """Why: the failed precondition's message, the plan's step summaries, or the error."""

    @property
    def kind(self) -> str:
        """The timeline event: ``gate-refused``, ``gate-allowed``, ``gate-error``."""
        return f"gate-{self.outcome}"


async def check_gate(settings: Settings, spec: GateSpec, scope: dict[str, Any]) -> GateResult:
    from console.runbooks.engine import RunbookEngine
    from console.runbooks.loader import find_runbook

    try:
        params = {name: str(render(value, scope)) for name, value in spec.params.items()}
    except TemplateError as exc:
        return _result(spec, "error", f"{spec.runbook}: parameters", str(exc))
    shown = " ".join(f"{k}={v}" for k, v in params.items())
    try:
        loaded = find_runbook(spec.runbook, settings.runbook_search_path)
        plan = await RunbookEngine(settings).plan(loaded, params)
    except PreconditionFailed as exc:
        return _result(spec, "refused", f"{spec.runbook} {shown}: refused", str(exc))
    except ConsoleError as exc:
        return _result(spec, "error", f"{spec.runbook} {shown}", str(exc))
    steps = "; ".join(s.plan.summary for s in plan.steps if s.plan is not None)
    return _result(spec, "allowed", f"{spec.runbook} {shown}: would run", steps)


def _result(spec: GateSpec, outcome: str, head: str, reason: str) -> GateResult:
    detail = f"{head}: {reason}"
    problem = None
    if outcome != spec.expect:
        problem = f"gate: expected {spec.runbook} to be {spec.expect}, it was {outcome}: {detail}"
    elif spec.expect_reason is not None and spec.expect_reason not in reason:
        problem = (
            f"gate: expected {spec.runbook} to be {spec.expect} with a reason naming "
            f"{spec.expect_reason!r}; it was {outcome}: {detail}"
        )
    return GateResult(outcome, detail, problem, reason)
