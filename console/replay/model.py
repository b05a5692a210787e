"""Replay's typed values: what to replay, the versions, per-version outputs (columnar numpy
arrays, so 10,000 samples cost no Python loop), the summary, and the events a replay yields."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from console.adapters.samples import SampleFilter, SampleRecord

DEFAULT_MODEL = "digits"
DEFAULT_VERSIONS = ("champion", "previous")
NO_LABEL = -1
"""``SelectedSamples.labels`` of a sample without a true label."""


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay and how. ``model`` None: the alert's ``model`` label, else ``digits``."""

    model: str | None = None
    client: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_score: float | None = None
    alert: str | None = None
    """An Alertmanager fingerprint: its ``client``/``model`` labels fill what is not given, and
    its start (minus ``ALERT_LOOKBACK``) the window when ``since`` is not given."""
    limit: int = 1000
    versions: tuple[str, ...] = DEFAULT_VERSIONS
    """Alias names or version numbers; the first is the baseline the others are compared to."""
    endpoint: str | None = None
    """A V2 server's base URL; None: run the verified ONNX artifacts here with onnxruntime."""
    timeout_s: float = 10.0
    """Per request to the endpoint."""
    batch_size: int | None = None
    """Samples per model call (default 1024 locally, 256 through an endpoint)."""
    squeeze: bool = True
    """Compute each version's feature-squeezing score (one more model pass over the squeezed
    copies of the inputs)."""


@dataclass(frozen=True)
class SelectedSamples:
    """The samples a replay runs, newest first, with their inputs as one array."""

    records: list[SampleRecord]
    x: NDArray[np.float32]
    """[N, 64], row i is ``records[i].input``."""
    adversarial: NDArray[np.bool_]
    """[N]: the gateway flagged the sample (``SampleRecord.flagged``)."""
    labels: NDArray[np.int64]
    """[N]: the sample's true label, ``NO_LABEL`` when the store does not know it."""
    filter: SampleFilter
    truncated: bool
    """More samples matched than ``filter.limit``."""
    skipped_lines: int
    """Malformed or torn store lines."""
    without_input: int
    """Matched records left out: the store kept only their hash (``gateway.hash_only``)."""
    invalid_input: int
    """Matched records left out: pixel values not finite or outside 0..16."""
    alert_labels: dict[str, str] | None = None
    """The labels of the alert the selection came from."""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def describe(self) -> dict[str, Any]:
        f = self.filter
        return {
            "model": f.model,
            "client": f.client,
            "since": f.since.isoformat() if f.since else None,
            "until": f.until.isoformat() if f.until else None,
            "min_score": f.min_score,
            "limit": f.limit,
            "alert_labels": self.alert_labels,
            "samples": len(self.records),
            "truncated": self.truncated,
            "skipped_lines": self.skipped_lines,
            "without_input": self.without_input,
            "invalid_input": self.invalid_input,
        }


@dataclass(frozen=True)
class VersionRef:
    """A requested version, resolved in the registry."""

    spec: str
    """As asked: an alias (``champion``) or a number (``3``)."""
    version: str
    sha256: str
    """The version's ``onnx_sha256`` tag ("" if it has none)."""
    aliases: tuple[str, ...] = ()
    """Every alias pointing at this version."""

    @property
    def label(self) -> str:
        """How people read it: ``champion (2)``, or ``version 3``."""
        if self.spec == self.version:
            return f"version {self.version}"
        return f"{self.spec} ({self.version})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "version": self.version,
            "label": self.label,
            "sha256": self.sha256,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class VersionRun:
    """One version's outputs over every sample."""

    ref: VersionRef
    labels: NDArray[np.int64]
    """[N] predictions."""
    probabilities: NDArray[np.float32]
    """[N, classes]"""
    confidence: NDArray[np.float32]
    """[N] the top probability."""
    squeeze_scores: NDArray[np.float32] | None
    """[N] feature-squeezing scores (the gateway's detector score), None if not computed."""


@dataclass(frozen=True)
class VersionSummary:
    ref: VersionRef
    mean_confidence: float
    confidence_shift: float
    """Mean over samples of this version's confidence minus the baseline's (0 for it)."""
    confidence_shift_adversarial: float | None
    """The same over the adversarial samples (None without any)."""
    agreement: float
    """Fraction of samples on which it predicts what the baseline predicts."""
    mean_squeeze_score: float | None
    detector_flag_rate: float | None
    """Fraction of samples whose squeeze score reaches the gateway's flag threshold."""
    labelled_adversarial: int
    """Adversarial samples with a true label: the denominator of ``success_rate``."""
    fooled: int
    """Of those, how many this version labels wrong."""

    @property
    def success_rate(self) -> float | None:
        """Adversarial success rate (M1): labelled adversarial samples it gets wrong."""
        return self.fooled / self.labelled_adversarial if self.labelled_adversarial else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.ref.as_dict(),
            "mean_confidence": _round(self.mean_confidence),
            "confidence_shift": _round(self.confidence_shift),
            "confidence_shift_adversarial": _round(self.confidence_shift_adversarial),
            "agreement_with_baseline": _round(self.agreement),
            "mean_squeeze_score": _round(self.mean_squeeze_score),
            "detector_flag_rate": _round(self.detector_flag_rate),
            "labelled_adversarial": self.labelled_adversarial,
            "fooled": self.fooled,
            "adversarial_success_rate": _round(self.success_rate),
        }


@dataclass(frozen=True)
class Resistance:
    """How a version fares on the labelled adversarial samples that fool the baseline."""

    ref: VersionRef
    fool_baseline: int
    resisted: int
    """Of those, how many this version labels right."""

    @property
    def rate(self) -> float | None:
        return self.resisted / self.fool_baseline if self.fool_baseline else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.ref.version,
            "label": self.ref.label,
            "fool_baseline": self.fool_baseline,
            "resisted": self.resisted,
            "rate": _round(self.rate),
        }


@dataclass(frozen=True)
class ReplaySummary:
    samples: int
    adversarial: int
    labelled: int
    """Samples with a true label (adversarial or not)."""
    flips: int
    """Samples on which the versions do not all predict the same."""
    flip_rate: float
    flip_rate_adversarial: float | None
    flip_rate_other: float | None
    """On the samples not flagged: natural inputs rarely flip, adversarial ones often do."""
    versions: list[VersionSummary]
    resistance: list[Resistance]
    """One per version after the baseline."""
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "adversarial": self.adversarial,
            "labelled": self.labelled,
            "flips": self.flips,
            "flip_rate": _round(self.flip_rate),
            "flip_rate_adversarial": _round(self.flip_rate_adversarial),
            "flip_rate_other": _round(self.flip_rate_other),
            "versions": [v.as_dict() for v in self.versions],
            "resistance": [r.as_dict() for r in self.resistance],
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class SampleOutcome:
    """One sample across the versions (keys of the dicts: version numbers)."""

    sample_id: str
    time: datetime
    client: str
    served_version: str
    served_prediction: int
    detector_score: float
    adversarial: bool
    label: int | None
    predictions: dict[str, int]
    confidences: dict[str, float]
    squeeze_scores: dict[str, float] | None
    flip: bool

    @property
    def fooled(self) -> dict[str, bool] | None:
        if not self.adversarial or self.label is None:
            return None
        return {v: p != self.label for v, p in self.predictions.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "sample_id": self.sample_id,
            "time": self.time.isoformat(),
            "client": self.client,
            "served_version": self.served_version,
            "served_prediction": self.served_prediction,
            "detector_score": self.detector_score,
            "adversarial": self.adversarial,
            "label": self.label,
            "predictions": self.predictions,
            "confidences": self.confidences,
            "squeeze_scores": self.squeeze_scores,
            "flip": self.flip,
            "fooled": self.fooled,
        }


@dataclass(frozen=True)
class ReplayResult:
    model: str
    backend: str
    """``local onnxruntime (sha256 verified)`` or the endpoint's URL."""
    samples: SelectedSamples
    runs: list[VersionRun]
    flips: NDArray[np.bool_]
    summary: ReplaySummary
    elapsed_s: float = 0.0
    """Model calls and scoring, from the first batch to the summary."""

    @property
    def versions(self) -> list[VersionRef]:
        return [run.ref for run in self.runs]

    def outcomes(self) -> Iterator[SampleOutcome]:
        """Per-sample views, built on demand (the arrays are the result)."""
        labels = self.samples.labels.tolist()
        adversarial = self.samples.adversarial.tolist()
        flips = self.flips.tolist()
        columns = [
            (
                run.ref.version,
                run.labels.tolist(),
                np.round(run.confidence.astype(np.float64), 6).tolist(),
                None
                if run.squeeze_scores is None
                else np.round(run.squeeze_scores.astype(np.float64), 6).tolist(),
            )
            for run in self.runs
        ]
        for i, record in enumerate(self.samples.records):
            scores = (
                None
                if any(c[3] is None for c in columns)
                else {v: s[i] for v, _, _, s in columns if s is not None}
            )
            yield SampleOutcome(
                sample_id=record.sample_id,
                time=record.time,
                client=record.client,
                served_version=record.version,
                served_prediction=record.prediction,
                detector_score=record.detector_score,
                adversarial=adversarial[i],
                label=None if labels[i] == NO_LABEL else labels[i],
                predictions={v: p[i] for v, p, _, _ in columns},
                confidences={v: c[i] for v, _, c, _ in columns},
                squeeze_scores=scores,
                flip=flips[i],
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "selection": self.samples.describe(),
            "versions": [ref.as_dict() for ref in self.versions],
            "summary": self.summary.as_dict(),
            "verdict": self.summary.verdict,
            "elapsed_s": round(self.elapsed_s, 4),
            "samples": [o.as_dict() for o in self.outcomes()],
        }


# Events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayStarted:
    """Samples selected and versions ready: the model calls start."""

    model: str
    backend: str
    samples: SelectedSamples
    versions: list[VersionRef]
    batch_size: int


@dataclass(frozen=True)
class BatchDone:
    done: int
    """Samples run through every version so far."""
    total: int


@dataclass(frozen=True)
class ReplayFinished:
    result: ReplayResult


ReplayEvent = ReplayStarted | BatchDone | ReplayFinished


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)
