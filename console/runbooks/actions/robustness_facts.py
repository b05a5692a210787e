"""What the registry says of a version's robustness, as the registry actions show and judge it:
the recorded evaluation (``console.robustness``) read from the version's tags, its figures as
one line for a plan, and the promotion gate's verdict on a candidate against the champion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from console.adapters.mlflow import MlflowRegistry
from console.config import DetectorsSection, Settings
from console.config_robustness import RobustnessSection
from console.errors import ParameterError
from console.robustness import (
    GateMiss,
    RecordedRobustness,
    RobustnessRecord,
    detector_misses,
    gate_misses,
    measurement_misses,
    regressions,
)
from console.robustness_trust import record_trust, trusted_record

GATE_FIELDS = (
    "min_clean_accuracy",
    "max_adversarial_success",
    "max_detector_fpr",
    "max_regression",
)
"""The thresholds of ``[robustness]`` the promotion gate applies (recorded in the audit)."""

GATE_MEASUREMENT = (
    "epsilon",
    "samples",
    "attacks",
    "detectors.flag_threshold",
    "detectors.squeezers",
)
"""How a record must have been measured to count for the gate (``measurement_misses``) and the
detector settings its ``detector_fpr`` depends on: loosening these loosens the gate as surely
as a threshold does, so the audit records and compares them too."""

GATE_KEYS = GATE_FIELDS + GATE_MEASUREMENT


@dataclass(frozen=True)
class VersionRobustness:
    model: str
    version: str
    recorded: RecordedRobustness
    status: str = ""
    """The registry's status of the version (``READY`` once its artifact is in place)."""
    detector_misses: tuple[GateMiss, ...] = ()
    """How its detector figures were measured with other settings than ``[detectors]``."""

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version}"

    def text(self) -> str:
        """``clean_accuracy 0.962, max_adversarial_success 0.410, detector_fpr 0.040,
        evaluated 2026-12-03T13:02:11Z`` or why there is no usable record. The record is
        registry data (anyone who can write a tag wrote it): only printable ASCII is kept."""
        return _printable(self._text())

    def _text(self) -> str:
        record = self.recorded.record
        if record is None:
            return self.recorded.problem
        worst = record.max_adversarial_success
        return (
            f"clean_accuracy {record.clean_accuracy:.3f}, max_adversarial_success "
            f"{'-' if worst is None else f'{worst:.3f}'}, detector_fpr "
            f"{record.detector_fpr:.3f}, evaluated {record.evaluated_at}, {measured(record)}"
            + (f" (record {self.recorded.unchecked})" if self.recorded.unchecked else "")
        )

    def to_json(self) -> dict[str, Any]:
        """The figures a plan and the audit log carry (what the gate judged)."""
        record = self.recorded.record
        if record is None:
            return {"version": self.version, "evaluated": False, "problem": self.recorded.problem}
        return {
            "version": self.version,
            "evaluated": True,
            **record.figures(),
            "evaluated_at": record.evaluated_at,
            "onnx_sha256": record.onnx_sha256,
            "run_id": record.run_id,
            **({"record_unchecked": self.recorded.unchecked} if self.recorded.unchecked else {}),
        }


def measured(record: RobustnessRecord) -> str:
    """``eps 1, 200 samples, fgsm+pgd``: how the record was measured (kept short)."""
    attacks = "+".join(sorted(record.attacks)[:6]) or "no attacks"
    return f"eps {record.epsilon:g}, {record.samples} samples, {attacks}"


def _printable(text: str, limit: int = 400) -> str:
    shown = "".join(c if " " <= c <= "~" else "?" for c in text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


async def version_robustness(
    registry: MlflowRegistry, settings: Settings, model: str, version: str
) -> VersionRobustness:
    """The recorded robustness of ``model`` v``version``; ParameterError if there is no such
    version. A record for another artifact than the version's ``onnx_sha256`` tag counts as
    none, and so does one not signed by a trusted key when keys are in force
    (``console.robustness.recorded_robustness``): anyone who can write a tag could otherwise
    write a passing record for any version."""
    found = await registry.get_version(model, version)
    if found is None:
        raise ParameterError(f"model {model!r} has no version {version}")
    recorded = trusted_record(found.tags, record_trust(settings), model=model, version=version)
    detector = (
        tuple(detector_misses(recorded.record, settings.detectors)) if recorded.record else ()
    )
    return VersionRobustness(model, version, recorded, found.status, detector)


async def champion_robustness(
    registry: MlflowRegistry, settings: Settings, model: str, champion: str | None, version: str
) -> VersionRobustness | None:
    """The recorded robustness of the champion ``version`` is judged against: None when there
    is no champion, it is ``version`` itself, or its alias names a deleted version."""
    if champion is None or champion == version:
        return None
    try:
        return await version_robustness(registry, settings, model, champion)
    except ParameterError:
        return None


def gate_json(gate: RobustnessSection, detectors: DetectorsSection | None = None) -> dict[str, Any]:
    """The gate as the audit records it: the thresholds (``GATE_FIELDS``) and how a record must
    be measured (``GATE_MEASUREMENT``; the detector keys only when ``detectors`` is given)."""
    found: dict[str, Any] = {name: float(getattr(gate, name)) for name in GATE_FIELDS}
    found["epsilon"] = float(gate.epsilon)
    found["samples"] = int(gate.samples)
    found["attacks"] = sorted(set(gate.attacks))
    if detectors is not None:
        found["detectors.flag_threshold"] = float(detectors.flag_threshold)
        found["detectors.squeezers"] = sorted(set(detectors.squeezers))
    return found


def settings_gate_json(settings: Settings) -> dict[str, Any]:
    """``gate_json`` of the console's ``[robustness]`` and ``[detectors]``."""
    return gate_json(settings.robustness, settings.detectors)


def gate_verdict(gate: RobustnessSection, facts: VersionRobustness) -> str | None:
    """Why ``facts`` misses ``gate`` (one line), None if it passes or has no usable record
    (``refusal`` refuses that; a rollback shows it)."""
    record = facts.recorded.record
    if record is None:
        return None
    misses = [*gate_misses(record, gate), *facts.detector_misses]
    return _printable("; ".join(miss.why for miss in misses)) or None


def refusal(
    gate: RobustnessSection, candidate: VersionRobustness, champion: VersionRobustness | None
) -> str | None:
    """Why the gate refuses to promote ``candidate`` over ``champion`` (one line naming the
    figure), None if it may be promoted. A champion without a usable record, or with one not
    measured as the gate asks (``no_regression_check`` says why), is no reference: the
    candidate is then judged by the gate's thresholds alone."""
    record = candidate.recorded.record
    if record is None:
        how = f"aml-console eval {candidate.model} --version {candidate.version}"
        return (
            f"{candidate.label} has no usable recorded evaluation "
            f"({_printable(candidate.recorded.problem)}); "
            f"evaluate it first: {how}"
        )
    missed = gate_verdict(gate, candidate)
    if missed:
        return f"{candidate.label} misses the robustness gate: {missed}"
    if champion is None or champion.version == candidate.version:
        return None
    reference = champion.recorded.record
    if reference is None or no_regression_check(gate, candidate, champion):
        return None
    worse = regressions(record, reference, gate.max_regression)
    if worse:
        detail = _printable("; ".join(miss.why for miss in worse))
        return f"{candidate.label} is worse than the champion v{champion.version}: {detail}"
    return None


def no_regression_check(
    gate: RobustnessSection, candidate: VersionRobustness, champion: VersionRobustness | None
) -> str | None:
    """Why the candidate is not compared with ``champion`` (``no regression check: champion
    v2's record ...``), None when it is (or there is no other champion). Comparing with a record
    measured at another epsilon, or with attacks left out, would compare unlike figures, and a
    missing figure is skipped: a plan must say so rather than pass silently."""
    if champion is None or champion.version == candidate.version:
        return None
    reference = champion.recorded.record
    if reference is None:
        why = f"is not usable ({champion.recorded.problem})"
    else:
        misses = measurement_misses(reference, gate)
        if not misses:
            return None
        why = "was not measured as the gate asks: " + "; ".join(m.why for m in misses)
    return _printable(f"no regression check: champion v{champion.version}'s record {why}")
