"""``robustness.record_gate``: put the promotion gate a run applies into the audit log, and say
when it is not the gate the previous promotion applied.

There is no ``--force`` on a promotion: an operator who must promote a version the gate refuses
changes ``[robustness]`` in the config. This step makes that change visible where every change
is: its audit records carry the thresholds applied, and, when they differ from those of the
last recorded promotion (of any model: the config is the console's), which thresholds, or
which of the ways a record must be measured (``epsilon``, ``samples``, ``attacks``, the
detector's ``flag_threshold`` and ``squeezers``), changed (old -> new; a key an older record
lacks reads ``unset`` and counts as changed), by whom (the operator of this run) and where the
gate was read (the config file, ``CONSOLE_ROBUSTNESS__*`` variables).

Only the gate of a run that also promoted (its ``registry.promote`` step ended ok or noop)
counts as the last recorded one: a runbook with a ``record_gate`` step alone cannot make a
loosened gate the baseline the next promotion compares with. The last recorded gate is read
back from the audit log itself and kept only if its record authenticates (HMAC), so an edited
log line cannot hide a change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from console.adapters.mlflow import ModelName
from console.audit.files import NotRegularFile, open_regular
from console.audit.log import AuditLog
from console.audit.records import AuditRecord, BadRecord, RecordChecker
from console.config import Settings
from console.errors import AuditError
from console.runbooks.actions.base import Action, ActionArgs, ActionContext, StepPlan
from console.runbooks.actions.robustness_facts import GATE_FIELDS, GATE_KEYS, settings_gate_json

ACTION = "robustness.record_gate"
PROMOTE_ACTION = "registry.promote"
_OUTCOME = b'"kind":"step-outcome"'
_GATE = b'"action":"robustness.record_gate"'
_PROMOTE = b'"action":"registry.promote"'
ENV_PREFIX = "CONSOLE_ROBUSTNESS__"


class GateArgs(ActionArgs):
    model: ModelName
    version: str = ""
    """What the run promotes (shown in the record; the gate is the console's)."""


@dataclass(frozen=True)
class RecordedGate:
    """The gate the last promotion applied, as its audit record has it."""

    gate: dict[str, Any]
    run_id: str
    operator: str
    time: str
    model: str

    def to_json(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "run_id": self.run_id,
            "operator": self.operator,
            "time": self.time,
            "model": self.model,
        }


def last_recorded_gate(settings: Settings) -> RecordedGate | None:
    """The gate of the last authenticated ``robustness.record_gate`` outcome in the audit log
    of a run whose ``registry.promote`` step also ended ok or noop (None: no promotion recorded
    one). AuditError if the log cannot be read."""
    log = AuditLog.from_settings(settings)
    checker = RecordChecker(log.key) if log.key else None
    try:
        fd = open_regular(log.path)
    except FileNotFoundError:
        return None
    except (NotRegularFile, OSError) as exc:
        raise AuditError(f"cannot read audit log {log.path}: {exc}") from None
    gates: list[RecordedGate] = []
    promoted: set[str] = set()
    with os.fdopen(fd, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n") or _OUTCOME not in raw:
                continue
            is_gate = _GATE in raw
            if not is_gate and _PROMOTE not in raw:
                continue
            line = raw[:-1]
            try:
                if checker is not None:
                    checker.check(line)
                record = AuditRecord.model_validate_json(line)
            except (BadRecord, ValueError):
                continue  # `audit verify` reports it; it is no evidence of a gate
            if record.result not in ("ok", "noop"):
                continue
            if record.action == PROMOTE_ACTION:
                promoted.add(record.run_id)
                continue
            gate = _gate_of(record) if record.action == ACTION else None
            if gate is not None:
                model = record.arguments.get("model")
                gates.append(
                    RecordedGate(
                        gate,
                        record.run_id,
                        record.operator,
                        record.time.isoformat(),
                        str(model) if model is not None else "",
                    )
                )
    return next((g for g in reversed(gates) if g.run_id in promoted), None)


def _gate_of(record: AuditRecord) -> dict[str, Any] | None:
    after = record.after
    if not isinstance(after, dict) or not isinstance(after.get("gate"), dict):
        return None
    gate: dict[str, Any] = after["gate"]
    return gate


def gate_sources(settings: Settings) -> dict[str, Any]:
    """Where this process read ``[robustness]``: the config file and the variables set."""
    env = {k: v for k, v in sorted(os.environ.items()) if k.upper().startswith(ENV_PREFIX)}
    path = settings.config_path
    return {"config": str(path) if path else None, "env": env}


def _figure(value: Any) -> str:
    """A gate value as the plan shows it: ``0.600``, ``200``, ``fgsm+pgd``; ``unset`` for a key
    an older record lacks (or anything else a record should not hold)."""
    if isinstance(value, bool):
        return "unset"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "+".join(value) or "none"
    return "unset"


class RecordGate(Action[GateArgs]):
    name = ACTION
    description = (
        "Record the promotion gate ([robustness]) this run applies, and what changed since the "
        "last promotion recorded one (old -> new, by whom)."
    )
    Args = GateArgs

    async def plan(self, args: GateArgs, ctx: ActionContext) -> StepPlan:
        import asyncio

        previous = await asyncio.to_thread(last_recorded_gate, ctx.settings)
        gate = settings_gate_json(ctx.settings)
        shown = ", ".join(f"{name} {_figure(gate[name])}" for name in GATE_FIELDS)
        shown += "; measured at " + ", ".join(
            f"{name} {_figure(gate[name])}" for name in GATE_KEYS if name not in GATE_FIELDS
        )
        changed: dict[str, str] = {}
        if previous is None:
            summary = f"apply the robustness gate {shown} (no promotion recorded one before)"
        else:
            changed = {
                name: f"{_figure(previous.gate.get(name))} -> {_figure(gate[name])}"
                for name in GATE_KEYS
                if name not in previous.gate or previous.gate[name] != gate[name]
            }
            since = f"promote run {previous.run_id} by {previous.operator} at {previous.time}"
            if changed:
                what = "; ".join(f"{name} {move}" for name, move in changed.items())
                summary = f"the robustness gate changed since {since}: {what}; by {ctx.operator}"
            else:
                summary = f"apply the robustness gate {shown} (unchanged since {since})"
        return StepPlan(
            summary=summary,
            before=previous.to_json() if previous else None,
            after={
                "gate": gate,
                "changed": changed,
                "changed_by": ctx.operator if changed else None,
                "sources": gate_sources(ctx.settings),
                "model": args.model,
                "version": args.version,
            },
            noop=previous is not None and not changed,
        )

    def fingerprint(self, plan: StepPlan) -> Any:
        # What must hold at apply is the gate confirmed; another model's promotion recording
        # the same gate in between does not make this plan stale.
        return {"gate": plan.after["gate"]}

    async def apply(self, args: GateArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        return plan.after  # the record is the step's own audit outcome

    async def compensate(self, args: GateArgs, ctx: ActionContext, before: Any, after: Any) -> Any:
        return after  # a record is not undone
