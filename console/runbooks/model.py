"""The runbook schema: what a file in ``runbooks/`` may say."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from console.durations import parse_duration
from console.runbooks.patterns import check_pattern
from console.runbooks.resources import split_target

IDENT = r"^[a-z][a-z0-9_-]{0,62}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterSpec(Strict):
    type: Literal["string", "int", "duration", "enum", "bool", "secret"]
    description: str = ""
    required: bool = False
    default: Any = None
    pattern: str | None = None
    """Regular expression the whole value must match (string, secret), in RE2 syntax (no
    backreferences or lookaround: matching is linear in the value's length)."""
    min_length: int | None = Field(default=None, ge=0)
    max_length: int = Field(default=256, ge=1, le=4096)
    min: Any = None
    """Lower bound: an int for int, a duration such as 1m for duration."""
    max: Any = None
    values: list[str] | None = None
    """Allowed values of an enum."""

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            check_pattern(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ParameterSpec:
        if self.type == "enum" and not self.values:
            raise ValueError("an enum parameter needs values")
        if self.type != "enum" and self.values is not None:
            raise ValueError("values is only for enum parameters")
        if self.type == "duration":
            for bound in (self.min, self.max):
                if bound is not None:
                    parse_duration(str(bound))
        if self.type == "int":
            for bound in (self.min, self.max):
                if bound is not None and not isinstance(bound, int):
                    raise ValueError("min and max of an int parameter must be integers")
        if self.required and self.default is not None:
            raise ValueError("a required parameter cannot have a default")
        return self

    @property
    def secret(self) -> bool:
        return self.type == "secret"


class CompensationSpec(Strict):
    action: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class StepSpec(Strict):
    id: str = Field(pattern=IDENT)
    action: str
    description: str = ""
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout: str = "30s"
    retries: int = Field(default=0, ge=0, le=5)
    compensate: Literal["auto", "none"] | CompensationSpec = "auto"
    """auto: the action's own inverse; none: leave it; or an explicit action."""

    @field_validator("timeout")
    @classmethod
    def _timeout_is_duration(cls, value: str) -> str:
        seconds = parse_duration(value).total_seconds()
        if not 0 < seconds <= 3600:
            raise ValueError("timeout must be between 1ms and 1h")
        return value


class PreconditionSpec(Strict):
    check: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    message: str = ""


class ApprovalSpec(Strict):
    """``approval:``: the run waits, after its plan, for another operator to approve it."""

    required: bool = True
    ttl: str = "15m"
    """How long the request stays valid, pending or approved, from when it was made."""
    approvers: list[str] = Field(default_factory=list, max_length=50)
    """Ids or ``group:NAME`` (the ACL policy's groups); empty: any other operator the ACL
    allows to approve."""

    @field_validator("ttl")
    @classmethod
    def _ttl_bounded(cls, value: str) -> str:
        seconds = parse_duration(value).total_seconds()
        if not 1 <= seconds <= 7 * 86400:
            raise ValueError("ttl must be between 1s and 7d")
        return value


class Runbook(Strict):
    name: str = Field(pattern=IDENT)
    title: str = ""
    description: str = ""
    tags: list[str] = Field(default_factory=list, max_length=20)
    """Free labels (``containment``, ``registry``) an ACL rule can name as ``tag:NAME``."""
    target: str
    """The resources the run may change, e.g. ``client:{{ params.client }}``; several are
    separated by commas (or given as a YAML list, kept here joined by ``, ``)."""
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    approval: ApprovalSpec | None = None
    preconditions: list[PreconditionSpec] = Field(default_factory=list)
    steps: list[StepSpec] = Field(min_length=1, max_length=50)
    outputs: dict[str, str] = Field(default_factory=dict)

    @field_validator("target", mode="before")
    @classmethod
    def _target_list(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return ", ".join(value)
        return value

    @field_validator("target")
    @classmethod
    def _target_names_something(cls, value: str) -> str:
        if not split_target(value):
            raise ValueError("the target names no resource")
        return value

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, value: dict[str, ParameterSpec]) -> dict[str, ParameterSpec]:
        for name in value:
            if not re.fullmatch(r"^[a-z][a-z0-9_]{0,62}$", name):
                raise ValueError(f"parameter name {name!r} must be lower_snake_case")
        return value

    @model_validator(mode="after")
    def _unique_step_ids(self) -> Runbook:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return self

    @property
    def targets(self) -> list[str]:
        """The target's resources, as templates."""
        return split_target(self.target)

    def step(self, step_id: str) -> StepSpec:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)
