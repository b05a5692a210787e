"""A model version's recorded robustness: what ``aml-console eval`` measured, as it is stored on
the version in the registry (tags ``aml.robustness.*``), and the gate it is judged by.

The record names the sha256 of the artifact it measured. A record whose hash is not the
version's ``onnx_sha256`` tag measured something else (an artifact swapped since, or tags copied
from another version) and counts as no evaluation.

Tags (strings, as MLflow stores them)::

    aml.robustness.evaluated_at          ISO 8601, UTC
    aml.robustness.onnx_sha256           the artifact measured
    aml.robustness.clean_accuracy        M2
    aml.robustness.detector_fpr          M3, at aml.robustness.detector_threshold
    aml.robustness.max_adversarial_success
    aml.robustness.<attack>.adversarial_success_rate     M1 at the gated strength
    aml.robustness.<attack>.detector_recall              M4
    aml.robustness.<attack>.queries                      mean model calls per input
    aml.robustness.extraction.surrogate_agreement        at aml.robustness.extraction.budget
    aml.robustness.record                the whole record, JSON (what is read back)
    aml.robustness.run_id                the MLflow run holding metrics and report.json
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from console.config_robustness import RobustnessSection
from console.robustness_seal import SIGNATURE_TAG, record_signed_by, sign_record

if TYPE_CHECKING:
    from console.config import DetectorsSection

TAG_PREFIX = "aml.robustness."
RECORD_TAG = TAG_PREFIX + "record"
MAX_RECORD_CHARS = 5000
"""MLflow's limit on a tag value: a record is kept under it."""


class TriggerPatch(BaseModel):
    """The backdoor probe's worst patch: ``size`` x ``size`` pixels of ``value`` with their
    top-left corner at ``row``, ``col`` of the 8x8 digit, turning inputs into class ``target``."""

    row: int
    col: int
    size: int
    value: float
    target: int
    flipped: float
    """Share of all the inputs not of class ``target`` it turns into ``target``."""


class AttackFigures(BaseModel):
    attack: str
    adversarial_success_rate: float | None = None
    """Share of correctly classified held-out inputs the attack made misclassified, at the
    gated strength (M1). None for extraction, which fools nothing."""
    by_strength: dict[str, float] = Field(default_factory=dict)
    """Success rate per strength (``"1.0"`` -> rate) for FGSM and PGD; the backdoor probe's
    worst rate per patch size (``"2x2"`` -> rate)."""
    detector_recall: float | None = None
    """Share of the attack's successful adversarial inputs the detector flags (M4)."""
    queries: float | None = None
    """Mean model calls per attacked input (black-box attacks; the whole budget for extraction)."""
    surrogate_agreement: float | None = None
    """Extraction: share of held-out inputs the stolen surrogate labels as the model does."""
    trigger: TriggerPatch | None = None
    """Backdoor probe: the patch behind its ``adversarial_success_rate``."""
    budget: int | None = None
    samples: int = 0
    seconds: float = 0.0


class RobustnessRecord(BaseModel):
    model: str
    version: str
    onnx_sha256: str
    evaluated_at: str
    clean_accuracy: float
    detector_fpr: float
    detector_threshold: float
    epsilon: float
    samples: int
    attacks: dict[str, AttackFigures] = Field(default_factory=dict)
    run_id: str = ""
    """The MLflow run holding the metrics and ``report.json``."""
    holdout: str = ""
    """The held-out set measured: ``digits-split:<params>`` (the built-in split) or
    ``sha256:<hex>`` of a ``--holdout`` file's x and y bytes. Empty: a record from before it was
    named (see ``measurement_misses``)."""
    unique_samples: int | None = None
    """Distinct rows among the ``samples`` (a file repeating one row counts once)."""
    squeezers: list[str] = Field(default_factory=list)
    """``[detectors] squeezers`` behind ``detector_fpr`` and each ``detector_recall``."""

    @property
    def max_adversarial_success(self) -> float | None:
        rates = [
            a.adversarial_success_rate
            for a in self.attacks.values()
            if a.adversarial_success_rate is not None
        ]
        return max(rates) if rates else None

    @property
    def surrogate_agreement(self) -> float | None:
        found = self.attacks.get("extraction")
        return found.surrogate_agreement if found else None

    def to_tags(self) -> dict[str, str]:
        tags = {
            TAG_PREFIX + "evaluated_at": self.evaluated_at,
            TAG_PREFIX + "onnx_sha256": self.onnx_sha256,
            TAG_PREFIX + "clean_accuracy": _figure(self.clean_accuracy),
            TAG_PREFIX + "detector_fpr": _figure(self.detector_fpr),
            TAG_PREFIX + "detector_threshold": _figure(self.detector_threshold),
            TAG_PREFIX + "run_id": self.run_id,
        }
        if (worst := self.max_adversarial_success) is not None:
            tags[TAG_PREFIX + "max_adversarial_success"] = _figure(worst)
        for name, figures in self.attacks.items():
            for key in ("adversarial_success_rate", "detector_recall", "queries"):
                value = getattr(figures, key)
                if value is not None:
                    tags[f"{TAG_PREFIX}{name}.{key}"] = _figure(value)
            if figures.surrogate_agreement is not None:
                tags[f"{TAG_PREFIX}{name}.surrogate_agreement"] = _figure(
                    figures.surrogate_agreement
                )
                tags[f"{TAG_PREFIX}{name}.budget"] = str(figures.budget or 0)
        record = self.model_dump_json()
        if len(record) > MAX_RECORD_CHARS:  # by_strength of many strengths: drop the curve
            slim = self.model_copy(
                update={
                    "attacks": {
                        k: a.model_copy(update={"by_strength": {}}) for k, a in self.attacks.items()
                    }
                }
            )
            record = slim.model_dump_json()
        tags[RECORD_TAG] = record
        return tags

    def signed_tags(self, private_key_pem: bytes | None) -> dict[str, str]:
        """``to_tags()`` plus the record's signature under the artifact signing key (none
        without a key: then only a context that trusts no key accepts the record)."""
        tags = self.to_tags()
        if private_key_pem is not None:
            tags[SIGNATURE_TAG] = sign_record(tags[RECORD_TAG], private_key_pem)
        return tags

    def figures(self) -> dict[str, float | None]:
        """The gated figures by name."""
        return {
            "clean_accuracy": self.clean_accuracy,
            "max_adversarial_success": self.max_adversarial_success,
            "detector_fpr": self.detector_fpr,
        }


def _figure(value: float) -> str:
    return f"{value:.4f}"


@dataclass(frozen=True)
class RecordedRobustness:
    """What the registry says of a version: its record, or why there is none usable."""

    record: RobustnessRecord | None
    problem: str = ""
    """``not evaluated``, ``record unreadable: ...``, ``measured another artifact (...)``."""
    unchecked: str = ""
    """Set when the record was taken without a signature check (no key configured), and why."""

    @property
    def usable(self) -> bool:
        return self.record is not None


def recorded_robustness(
    tags: dict[str, str], onnx_sha256: str, public_keys: Sequence[bytes] = ()
) -> RecordedRobustness:
    """The record in a version's ``tags`` if it measured the artifact ``onnx_sha256`` (the
    version's own tag) and, when ``public_keys`` are given (the context's artifact signing keys),
    is signed by one of them. Tags are registry data, so a broken record is a problem, not an
    error."""
    raw = tags.get(RECORD_TAG, "")
    if not raw:
        return RecordedRobustness(None, "not evaluated")
    if public_keys and not record_signed_by(raw, tags.get(SIGNATURE_TAG, ""), public_keys):
        why = "unsigned" if not tags.get(SIGNATURE_TAG) else "its signature does not verify"
        return RecordedRobustness(None, f"record not trusted: {why}")
    try:
        record = RobustnessRecord.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0][:80]
        return RecordedRobustness(None, f"record unreadable: {first}")
    figures = [record.clean_accuracy, record.detector_fpr, record.max_adversarial_success]
    if any(f is not None and not (math.isfinite(f) and 0 <= f <= 1) for f in figures):
        return RecordedRobustness(None, "record unreadable: a figure outside 0..1")
    wanted = onnx_sha256.strip().lower()
    if not wanted or record.onnx_sha256.strip().lower() != wanted:
        return RecordedRobustness(
            None,
            f"measured another artifact (sha256 {record.onnx_sha256[:12]}, "
            f"the version's is {wanted[:12] or 'not tagged'})",
        )
    return RecordedRobustness(record)


@dataclass(frozen=True)
class GateMiss:
    figure: str
    value: float | None
    limit: float
    why: str
    """One line: ``clean_accuracy 0.812 is below the gate's 0.900``."""


def gate_misses(record: RobustnessRecord, gate: RobustnessSection) -> list[GateMiss]:
    """Every threshold of ``[robustness]`` the record misses (empty: it passes), and every way
    it was measured more weakly than the gate asks (a lower ``epsilon``, fewer ``samples``, an
    evasion attack of ``[robustness] attacks`` left out): a record of ``eval --attacks fgsm
    --samples 10`` is no evidence for the gate, signed or not."""
    misses = measurement_misses(record, gate) + masking_misses(record)
    if record.clean_accuracy < gate.min_clean_accuracy:
        misses.append(
            GateMiss(
                "clean_accuracy",
                record.clean_accuracy,
                gate.min_clean_accuracy,
                f"clean_accuracy {record.clean_accuracy:.3f} is below the gate's "
                f"{gate.min_clean_accuracy:.3f}",
            )
        )
    worst = record.max_adversarial_success
    if worst is None:
        misses.append(
            GateMiss(
                "max_adversarial_success",
                None,
                gate.max_adversarial_success,
                "no evasion attack was evaluated",
            )
        )
    elif worst > gate.max_adversarial_success:
        name = max(
            (a for a in record.attacks.values() if a.adversarial_success_rate is not None),
            key=lambda a: a.adversarial_success_rate or 0.0,
        ).attack
        misses.append(
            GateMiss(
                "max_adversarial_success",
                worst,
                gate.max_adversarial_success,
                f"{name} adversarial_success_rate {worst:.3f} is above the gate's "
                f"{gate.max_adversarial_success:.3f}",
            )
        )
    if record.detector_fpr > gate.max_detector_fpr:
        misses.append(
            GateMiss(
                "detector_fpr",
                record.detector_fpr,
                gate.max_detector_fpr,
                f"detector_fpr {record.detector_fpr:.3f} is above the gate's "
                f"{gate.max_detector_fpr:.3f}",
            )
        )
    return misses


EVASION_ATTACKS = frozenset({"fgsm", "pgd", "hopskipjump", "backdoor"})
"""The attacks whose success rate the gate reads (extraction fools nothing)."""


def measurement_misses(record: RobustnessRecord, gate: RobustnessSection) -> list[GateMiss]:
    misses: list[GateMiss] = []
    if not math.isclose(record.epsilon, gate.epsilon, rel_tol=1e-6):
        misses.append(
            GateMiss(
                "epsilon",
                record.epsilon,
                gate.epsilon,
                f"measured at epsilon {record.epsilon:g}, the gate's is {gate.epsilon:g}: "
                "evaluate again",
            )
        )
    if record.samples < gate.samples:
        misses.append(
            GateMiss(
                "samples",
                record.samples,
                gate.samples,
                f"measured on {record.samples} held-out inputs, the gate asks {gate.samples}",
            )
        )
    if record.holdout != gate.holdout:
        # An empty holdout is a record from before records named theirs: no evidence of which
        # inputs it was measured on (`lab up` evaluates the seed versions again).
        shown = record.holdout[:60] or "unnamed"
        misses.append(
            GateMiss(
                "holdout",
                None,
                0,
                f"measured on holdout {shown}, the gate asks {gate.holdout[:60]}",
            )
        )
    if record.unique_samples is not None and record.unique_samples < gate.samples:
        misses.append(
            GateMiss(
                "unique_samples",
                record.unique_samples,
                gate.samples,
                f"measured on {record.unique_samples} distinct held-out inputs, the gate asks "
                f"{gate.samples}",
            )
        )
    left_out = sorted((set(gate.attacks) & EVASION_ATTACKS) - set(record.attacks))
    if left_out:
        misses.append(
            GateMiss(
                "attacks",
                None,
                len(left_out),
                f"not measured: {', '.join(left_out)} (in [robustness] attacks)",
            )
        )
    return misses


MASKING_MARGIN = 0.05
"""How far black-box HopSkipJump may beat white-box PGD at the gated epsilon before the
white-box figures are taken for gradient masking (a gradient that hides, not robustness)."""


def masking_misses(record: RobustnessRecord) -> list[GateMiss]:
    """ "gradient masking suspected" when HopSkipJump (no gradient) fools more inputs than PGD
    (which has the gradient) at the same gated epsilon, by more than ``MASKING_MARGIN``."""
    pgd, hsj = record.attacks.get("pgd"), record.attacks.get("hopskipjump")
    if pgd is None or hsj is None:
        return []
    white, black = pgd.adversarial_success_rate, hsj.adversarial_success_rate
    if white is None or black is None or black <= white + MASKING_MARGIN + 1e-9:
        return []
    return [
        GateMiss(
            "gradient_masking",
            black,
            white,
            f"gradient masking suspected: black-box hopskipjump {black:.3f} beats white-box pgd "
            f"{white:.3f} at epsilon {record.epsilon:g} by more than {MASKING_MARGIN:.2f}",
        )
    ]


def detector_misses(record: RobustnessRecord, detectors: DetectorsSection) -> list[GateMiss]:
    """Each way the record's detector figures were measured with other settings than
    ``[detectors]`` (a higher ``flag_threshold`` flags less, so its detector_fpr is no
    evidence). A record without ``squeezers`` (older) is checked on its threshold only."""
    misses: list[GateMiss] = []
    if not math.isclose(record.detector_threshold, detectors.flag_threshold, abs_tol=1e-6):
        misses.append(
            GateMiss(
                "detector_threshold",
                record.detector_threshold,
                detectors.flag_threshold,
                f"detector measured at flag_threshold {record.detector_threshold:g}, "
                f"[detectors] has {detectors.flag_threshold:g}",
            )
        )
    wanted = sorted(detectors.squeezers)
    if record.squeezers and sorted(record.squeezers) != wanted:
        misses.append(
            GateMiss(
                "squeezers",
                None,
                0,
                f"detector measured with squeezers {','.join(sorted(record.squeezers))[:60]}, "
                f"[detectors] has {','.join(wanted)}",
            )
        )
    return misses


def regressions(
    candidate: RobustnessRecord, champion: RobustnessRecord, margin: float
) -> list[GateMiss]:
    """Each gated figure on which ``candidate`` is worse than ``champion`` by more than
    ``margin`` (``[robustness] max_regression``)."""
    found: list[GateMiss] = []
    lower_is_better = {"max_adversarial_success", "detector_fpr"}
    theirs = champion.figures()
    for name, ours in candidate.figures().items():
        other = theirs[name]
        if ours is None or other is None:
            continue
        worse_by = ours - other if name in lower_is_better else other - ours
        if worse_by > margin + 1e-9:
            found.append(
                GateMiss(
                    name,
                    ours,
                    other,
                    f"{name} {ours:.3f} is worse than the champion's {other:.3f} by "
                    f"{worse_by:.3f} (margin {margin:.3f})",
                )
            )
    return found
