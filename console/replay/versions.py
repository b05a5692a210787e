"""Requested versions (``champion,previous,3``: aliases or numbers) resolved in the registry,
and each one's recorded robustness (``aml.robustness.*`` tags, judged against ``[robustness]``)
as the verdict quotes it."""

from __future__ import annotations

from dataclasses import dataclass

from console.adapters.mlflow import MlflowRegistry, check_alias
from console.config_robustness import RobustnessSection
from console.errors import ParameterError, ReplayError
from console.replay.model import VersionRef
from console.robustness import (
    GateMiss,
    RecordedRobustness,
    RobustnessRecord,
    gate_misses,
)
from console.robustness_trust import RecordTrust as RecordTrust
from console.robustness_trust import record_trust as record_trust
from console.robustness_trust import trusted_record

MAX_VERSIONS = 8


@dataclass(frozen=True)
class JudgedRobustness:
    """A version's recorded robustness and the thresholds of the gate it misses."""

    recorded: RecordedRobustness
    misses: tuple[GateMiss, ...] = ()

    @property
    def record(self) -> RobustnessRecord | None:
        return self.recorded.record

    @property
    def passes(self) -> bool | None:
        """None: no usable record (``problem`` says why)."""
        return None if self.recorded.record is None else not self.misses

    @property
    def problem(self) -> str:
        return self.recorded.problem

    @property
    def verdict(self) -> str:
        """``passes the gate``, ``misses the gate (clean_accuracy 0.812 is below ...)``, or
        why there is no usable record (``not evaluated``)."""
        if self.recorded.record is None:
            return self.recorded.problem or "not evaluated"
        caveat = f" (record {self.recorded.unchecked})" if self.recorded.unchecked else ""
        if not self.misses:
            return "passes the gate" + caveat
        more = f" and {len(self.misses) - 1} more" if len(self.misses) > 1 else ""
        return f"misses the gate ({self.misses[0].why}{more}){caveat}"

    def quote(self) -> str:
        """``clean 0.95, adversarial success 0.42, detector FPR 0.03, passes the gate``."""
        record = self.recorded.record
        if record is None:
            return self.verdict
        worst = record.max_adversarial_success
        return (
            f"clean {record.clean_accuracy:.2f}, adversarial success "
            f"{'-' if worst is None else f'{worst:.2f}'}, detector FPR "
            f"{record.detector_fpr:.2f}, {self.verdict}"
        )


def judge_robustness(
    tags: dict[str, str],
    gate: RobustnessSection,
    trust: RecordTrust | None = None,
    *,
    model: str,
    version: str,
) -> JudgedRobustness:
    """The record in ``model`` v``version``'s tags as the promotion gate believes it
    (``console.robustness_trust``), and the gate's thresholds it misses."""
    recorded = trusted_record(tags, trust or RecordTrust(), model=model, version=version)
    if recorded.record is None:
        return JudgedRobustness(recorded)
    return JudgedRobustness(recorded, tuple(gate_misses(recorded.record, gate)))


def parse_specs(text: str) -> tuple[str, ...]:
    """``"champion, previous,3"`` -> ``("champion", "previous", "3")``; ReplayError if empty,
    too many, or a name is not an alias MLflow could hold."""
    specs = tuple(s.strip() for s in text.split(",") if s.strip())
    if not specs:
        raise ReplayError("no versions given: --versions champion,previous (aliases or numbers)")
    if len(specs) > MAX_VERSIONS:
        raise ReplayError(f"at most {MAX_VERSIONS} versions per replay, got {len(specs)}")
    for spec in specs:
        if not spec.isdigit():
            try:
                check_alias(spec)
            except ParameterError:
                raise ReplayError(
                    f"version {spec[:40]!r} is neither a version number nor an alias name"
                ) from None
    return specs


async def resolve_versions(
    registry: MlflowRegistry, model: str, specs: tuple[str, ...]
) -> list[VersionRef]:
    """Each spec's version, its ``onnx_sha256`` tag and aliases, in the order asked. A version
    asked twice (``champion`` and ``2``) is kept once, under the first spec."""
    return [ref for ref, _ in await _resolve(registry, model, specs)]


async def resolve_with_robustness(
    registry: MlflowRegistry,
    model: str,
    specs: tuple[str, ...],
    gate: RobustnessSection,
    trust: RecordTrust | None = None,
) -> tuple[list[VersionRef], dict[str, JudgedRobustness]]:
    """``resolve_versions`` and each resolved version's recorded robustness (by number), read
    from the same answers."""
    found = await _resolve(registry, model, specs)
    judged = {
        ref.version: judge_robustness(tags, gate, trust, model=model, version=ref.version)
        for ref, tags in found
    }
    return [ref for ref, _ in found], judged


async def _resolve(
    registry: MlflowRegistry, model: str, specs: tuple[str, ...]
) -> list[tuple[VersionRef, dict[str, str]]]:
    registered = await registry.get_model(model)
    if registered is None:
        raise ReplayError(f"model {model!r} is not in the registry")
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(registered.aliases.items()):
        by_version.setdefault(version, []).append(alias)
    refs: list[tuple[VersionRef, dict[str, str]]] = []
    for spec in specs:
        if spec.isdigit():
            number = str(int(spec))
        elif spec in registered.aliases:
            number = registered.aliases[spec]
        else:
            known = ", ".join(f"{a} -> {v}" for a, v in sorted(registered.aliases.items()))
            raise ReplayError(f"model {model!r} has no alias {spec!r} (aliases: {known or 'none'})")
        if any(ref.version == number for ref, _ in refs):
            continue
        found = await registry.get_version(model, number)
        if found is None:
            versions = ", ".join(v.version for v in await registry.list_versions(model))
            raise ReplayError(
                f"model {model!r} has no version {number} (versions: {versions or 'none'})"
            )
        ref = VersionRef(
            spec=spec if not spec.isdigit() else number,
            version=number,
            sha256=found.tags.get("onnx_sha256", ""),
            aliases=tuple(by_version.get(number, ())),
        )
        refs.append((ref, dict(found.tags)))
    return refs
