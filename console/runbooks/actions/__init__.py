"""The registry of action types and precondition checks a runbook may name."""

from __future__ import annotations

from typing import Any

from console.runbooks.actions.base import Action, ActionContext, Check, StepPlan
from console.runbooks.actions.checks import AliasSet, ModelExists
from console.runbooks.actions.control import Wait
from console.runbooks.actions.evidence import CaptureEvidence
from console.runbooks.actions.gate_audit import RecordGate
from console.runbooks.actions.hardening import HardenOutputs, UnhardenOutputs
from console.runbooks.actions.http_request import HttpRequest
from console.runbooks.actions.policy import BlockClient, RestoreBudget, SetBudget, UnblockClient
from console.runbooks.actions.promotion import Promote, RobustnessGate
from console.runbooks.actions.registry import Rollback, SetAlias
from console.runbooks.actions.silence import ExpireSilences, SilenceAlert

ACTIONS: dict[str, Action[Any]] = {
    action.name: action
    for action in (
        BlockClient(),
        UnblockClient(),
        SetBudget(),
        RestoreBudget(),
        HardenOutputs(),
        UnhardenOutputs(),
        SetAlias(),
        Rollback(),
        Promote(),
        RecordGate(),
        SilenceAlert(),
        ExpireSilences(),
        CaptureEvidence(),
        HttpRequest(),
        Wait(),
    )
}

CHECKS: dict[str, Check[Any]] = {
    check.name: check for check in (ModelExists(), AliasSet(), RobustnessGate())
}

__all__ = ["ACTIONS", "CHECKS", "Action", "ActionContext", "Check", "StepPlan"]
