"""Drill scenarios (``configs/drills/*.yaml``): which attack, against which model, when; what
detection is expected; what counts as contained; and, for ``--responder auto``, which runbook a
scripted responder runs when which alert fires.

Read with the bounded safe YAML loader (``console.safe_yaml``) and validated by pydantic; every
problem is reported as ``file:line: field: reason``. Attack kinds and their arguments are the
lab's attack registry's, through the drills' attack bridge (``console.drills.attacks``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from console.drills.attacks import attack_argument_problem, attack_kinds
from console.durations import parse_duration
from console.errors import DrillError, DrillScenarioError
from console.safe_yaml import Limits, find_yaml, layered_yaml_files, load_model

LIMITS = Limits(max_bytes=64 * 1024)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _seconds(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_duration(str(value)).total_seconds()


def _known_kind(kind: str) -> str:
    if kind not in attack_kinds():
        raise ValueError(f"unknown attack kind {kind!r}; known: {', '.join(attack_kinds())}")
    return kind


class AttackSpec(_Strict):
    kind: str
    """One of the lab's attacks (``aml-console lab attack --help`` lists them)."""
    client: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,100}$")
    """The attacker's client id; each drill run appends its own id to it, so runs never share
    a client's series, detector state or policy."""
    model: str | None = None
    """Served model (default: the gateway's first)."""
    start_after: float = 5.0
    """Seconds of benign-only traffic before the attack (the timeline's quiet baseline)."""
    rounds: int = Field(default=1, ge=1, le=50)
    """Run the attack this many times (short attacks such as FGSM evasion repeat to sustain
    a rate the alert rules can see), ``pause`` seconds apart, until contained."""
    pause: float = 2.0
    args: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the attack (those of ``aml-console lab attack KIND``)."""

    _durations = field_validator("start_after", "pause", mode="before")(_seconds)
    _kind = field_validator("kind")(_known_kind)

    @model_validator(mode="after")
    def _known_args(self) -> AttackSpec:
        problem = attack_argument_problem(self.kind, self.args)
        if problem is not None:
            raise ValueError(problem)
        return self


class DetectSpec(_Strict):
    alertname: str
    match: dict[str, str] = Field(default_factory=dict)
    """Labels the alert must carry; values may use ``{{ attacker }}`` and ``{{ model }}``."""
    within: float = 180.0
    """Seconds after the attacker's first request by which the alert must fire."""

    _durations = field_validator("within", mode="before")(_seconds)


class ResponseSpec(_Strict):
    alert: str
    """Alert name that triggers this response (``on`` would read as a YAML 1.1 boolean)."""
    runbook: str
    params: dict[str, Any] = Field(default_factory=dict)
    """Runbook parameters: ``{{ labels.X }}``, ``{{ attacker }}``, ``{{ model }}``, or
    ``{query: PROMQL, label: NAME}`` to take a value from the top series of a PromQL query
    (per-model alerts whose runbook acts on a client)."""
    delay: float = 0.0
    """Seconds the scripted responder waits before acting (a human's reaction time)."""

    _durations = field_validator("delay", mode="before")(_seconds)


class ContainedSpec(_Strict):
    refused_share: float | None = Field(default=0.9, gt=0, le=1)
    """Contained once this share of the attacker's requests over ``window`` is refused (403
    or 429) at the gateway."""
    window: float = 5.0
    served_version: str | None = None
    """Or: contained once the gateway serves this version; ``before`` means the champion from
    before the attack (the poisoning drill's rollback)."""

    _durations = field_validator("window", mode="before")(_seconds)

    @model_validator(mode="after")
    def _one_criterion(self) -> ContainedSpec:
        if self.served_version is not None:
            return self.model_copy(update={"refused_share": None})
        if self.refused_share is None:
            raise ValueError("say what contained means: refused_share or served_version")
        return self


class GateSpec(_Strict):
    """After each attack round, plan a runbook the attack should (or should not) get past,
    never run it: the poisoning drill checks that ``promote-model`` of the version the attack
    registered is refused by the robustness gate."""

    runbook: str = "promote-model"
    params: dict[str, Any] = Field(default_factory=dict)
    """Values may use ``{{ model }}``, ``{{ attacker }}`` and ``{{ attack.FIELD }}`` (a field of
    the attack's report: ``{{ attack.version }}``, the poisoned version)."""
    expect: Literal["refused", "allowed"] = "refused"
    """``refused``: the plan must fail a precondition (the gate holds)."""
    expect_reason: str | None = Field(default=None, min_length=1, max_length=200)
    """A substring the outcome's reason must contain (the refusal's, for ``refused``; the
    plan's summary, for ``allowed``): ``misses the robustness gate`` says the gate refused on a
    recorded figure, not merely for want of an evaluation."""


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    title: str = ""
    description: str = ""
    attack: AttackSpec
    detect: DetectSpec
    respond: list[ResponseSpec] = Field(default_factory=list)
    contained: ContainedSpec = Field(default_factory=ContainedSpec)
    gate: GateSpec | None = None
    timeout: float = 300.0
    """The drill ends here whatever happened (uncontained if it was not)."""

    _durations = field_validator("timeout", mode="before")(_seconds)


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    path: Path


def load_scenario(path: Path) -> LoadedScenario:
    loaded = load_model(path, Scenario, error=DrillScenarioError, limits=LIMITS)
    return LoadedScenario(loaded.model, path)


scenario_files = layered_yaml_files
"""The scenarios of the drill folders by name, a later folder's overriding an earlier one's."""


def find_scenario(name_or_path: str, dirs: Iterable[Path]) -> LoadedScenario:
    dirs = list(dirs)
    path = find_yaml(name_or_path, dirs)
    if path is not None:
        return load_scenario(path)
    where = ", ".join(str(d) for d in dirs)
    raise DrillError(f"no drill scenario named {name_or_path!r} in {where} (see `drill list`)")
