"""Who may run what, per context: a policy file in the style of Rundeck's ACL policies.

    groups:
      oncall: [alice, bob]
    rules:
      - name: oncall-contains
        operators: [group:oncall]
        runbooks: [block-client, contain-extraction, "tag:containment"]
        targets: ["client:*"]
        allow: [run]
      - name: nobody-rolls-back-prod
        operators: ["*"]
        runbooks: [rollback-model]
        deny: [run]

A rule applies to an operator (an id, ``group:NAME`` or ``*``), a runbook (a name, a glob,
``tag:TAG`` or ``*``) and targets (globs over the run's resources, ``client:mallory-1``; by
default ``*``). A deny that applies wins over any allow, as in Rundeck. A context without a
policy file allows everything (the lab); once it has one, what no rule allows is denied, and
every refusal names the rule, or says that none allows it. ``read_only`` stays the master switch
and is checked before this. ``approve`` is the other action a rule can allow or deny.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from console.errors import AccessDenied, ConfigError
from console.safe_yaml import load_model

Action = Literal["run", "approve"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AclRule(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    operators: list[str] = Field(min_length=1)
    runbooks: list[str] = Field(min_length=1)
    targets: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    allow: list[Action] = Field(default_factory=list)
    deny: list[Action] = Field(default_factory=list)

    @model_validator(mode="after")
    def _acts(self) -> AclRule:
        if not self.allow and not self.deny:
            raise ValueError(f"rule {self.name!r} allows and denies nothing")
        return self


class AclPolicy(_Strict):
    groups: dict[str, list[str]] = Field(default_factory=dict)
    rules: list[AclRule] = Field(min_length=1)

    @field_validator("rules")
    @classmethod
    def _names_unique(cls, rules: list[AclRule]) -> list[AclRule]:
        names = [r.name for r in rules]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"rule name {name!r} is used twice")
        return rules


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str | None
    """The rule that decided; None when none applied."""
    reason: str


def _policy_error(problems: list[str]) -> ConfigError:
    return ConfigError("ACL policy is not valid: " + "; ".join(problems))


def load_policy(path: Path) -> AclPolicy:
    """The policy file, validated (file:line for every problem; safe YAML, bounded)."""
    return load_model(path, AclPolicy, error=_policy_error).model


def _operator_matches(patterns: Iterable[str], operator: str, groups: dict[str, list[str]]) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == operator:
            return True
        if pattern.startswith("group:") and operator in groups.get(pattern[6:], []):
            return True
    return False


def rules_for(policy: AclPolicy, operator: str) -> list[AclRule]:
    """The rules that name ``operator`` (by id, group or ``*``)."""
    return [r for r in policy.rules if _operator_matches(r.operators, operator, policy.groups)]


def _runbook_matches(patterns: Iterable[str], runbook: str, tags: Sequence[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("tag:"):
            if pattern[4:] in tags:
                return True
        elif fnmatchcase(runbook, pattern):
            return True
    return False


def decide(
    policy: AclPolicy,
    operator: str,
    action: Action,
    runbook: str,
    tags: Sequence[str],
    targets: Sequence[str],
) -> Decision:
    """Whether ``operator`` may ``action`` ``runbook`` on ``targets``: a deny that applies to
    any target wins; else an allow must cover every target; else denied."""
    applying = [
        rule
        for rule in policy.rules
        if _operator_matches(rule.operators, operator, policy.groups)
        and _runbook_matches(rule.runbooks, runbook, tags)
    ]
    for rule in applying:
        if action in rule.deny and any(
            fnmatchcase(t, p) for t in targets or [""] for p in rule.targets
        ):
            return Decision(False, rule.name, f"denied by ACL rule {rule.name!r}")
    for rule in applying:
        if action in rule.allow and all(
            any(fnmatchcase(t, p) for p in rule.targets) for t in targets
        ):
            return Decision(True, rule.name, f"allowed by ACL rule {rule.name!r}")
    on = f" on {', '.join(targets)}" if targets else ""
    return Decision(False, None, f"no ACL rule allows {operator!r} to {action} {runbook}{on}")


def check(
    path: Path | None,
    operator: str,
    action: Action,
    runbook: str,
    tags: Sequence[str],
    targets: Sequence[str],
) -> Decision:
    """``decide`` against the context's policy file; without one, everything is allowed.
    Raises AccessDenied (naming the rule, or saying none allows it) when denied."""
    if path is None:
        return Decision(True, None, "no ACL policy in this context")
    decision = decide(load_policy(path), operator, action, runbook, tags, targets)
    if not decision.allowed:
        raise AccessDenied(f"{decision.reason} ({path.name}); nothing was changed")
    return decision
