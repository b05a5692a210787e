"""Replay's figures and verdict, from the per-version arrays.

* adversarial: the samples the gateway flagged (``SampleRecord.flagged``);
* flip: the versions do not all predict the same on a sample;
* adversarial success rate (M1) of a version: the labelled adversarial samples it labels wrong.
  It needs the true label, which only labelled records carry (``SampleRecord.label``); without
  one nothing here can tell which version is right, and the verdict says so instead of
  guessing (measured: taking the squeezed input's prediction as the truth called a version
  that FGSM fooled on 99% of inputs "resistant" on 79%, docs/architecture.md, Replay);
* resistance of a version: of the labelled adversarial samples that fool the baseline (the
  first version asked), the fraction it labels right.

The verdict ends with what the registry records of each version's robustness (``aml-console
eval``, judged against ``[robustness]``) when the caller passes it: what was measured offline
beside what the stored traffic shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from console.replay.model import (
    NO_LABEL,
    ReplaySummary,
    Resistance,
    SelectedSamples,
    VersionRef,
    VersionRun,
    VersionSummary,
)

HELPS_AT = 0.5
"""A version 'helps' when it resists at least this fraction of the inputs fooling the baseline
and has the lower success rate overall."""


def summarise(
    samples: SelectedSamples,
    runs: list[VersionRun],
    flag_threshold: float,
    robustness: Mapping[str, str] | None = None,
) -> tuple[NDArray[np.bool_], ReplaySummary]:
    """Per-sample flips and the summary with its verdict; ``robustness`` (version number ->
    its recorded robustness in one line) is quoted at the verdict's end."""
    predictions = np.stack([run.labels for run in runs])
    flips = (predictions != predictions[0]).any(axis=0)
    adversarial = samples.adversarial
    labelled = samples.labels != NO_LABEL
    judged = adversarial & labelled
    base = runs[0]
    versions = [_version(run, base, adversarial, judged, samples, flag_threshold) for run in runs]
    base_fooled = judged & (base.labels != samples.labels)
    resistance = [
        Resistance(
            ref=run.ref,
            fool_baseline=_count(base_fooled),
            resisted=_count(base_fooled & (run.labels == samples.labels)),
        )
        for run in runs[1:]
    ]
    summary = ReplaySummary(
        samples=len(samples),
        adversarial=_count(adversarial),
        labelled=_count(labelled),
        flips=_count(flips),
        flip_rate=_rate(flips),
        flip_rate_adversarial=_rate_among(flips, adversarial),
        flip_rate_other=_rate_among(flips, ~adversarial),
        versions=versions,
        resistance=resistance,
        verdict="",
    )
    line = verdict(summary)
    if robustness is not None:
        line += quoted_robustness(summary, robustness)
    return flips, replace(summary, verdict=line)


def quoted_robustness(summary: ReplaySummary, robustness: Mapping[str, str]) -> str:
    """``; recorded robustness: champion (3): clean 0.95, adversarial success 0.42, detector
    FPR 0.03, passes the gate; previous (2): not evaluated``."""
    parts = [
        f"{v.ref.label}: {robustness[v.ref.version]}"
        for v in summary.versions
        if v.ref.version in robustness
    ]
    return f"; recorded robustness: {'; '.join(parts)}" if parts else ""


def _version(
    run: VersionRun,
    base: VersionRun,
    adversarial: NDArray[np.bool_],
    judged: NDArray[np.bool_],
    samples: SelectedSamples,
    flag_threshold: float,
) -> VersionSummary:
    shift = run.confidence - base.confidence
    scores = run.squeeze_scores
    return VersionSummary(
        ref=run.ref,
        mean_confidence=float(run.confidence.mean(dtype=np.float64)),
        confidence_shift=float(shift.mean(dtype=np.float64)),
        confidence_shift_adversarial=_mean(shift, adversarial),
        agreement=_rate(run.labels == base.labels),
        mean_squeeze_score=None if scores is None else float(scores.mean(dtype=np.float64)),
        detector_flag_rate=None if scores is None else _rate(scores >= flag_threshold),
        labelled_adversarial=_count(judged),
        fooled=_count(judged & (run.labels != samples.labels)),
    )


def verdict(summary: ReplaySummary) -> str:
    """One line a person can act on."""
    base = summary.versions[0]
    n, adv = summary.samples, summary.adversarial
    if len(summary.versions) == 1:
        rate = base.success_rate
        tail = "" if rate is None else f"; adversarial success rate {_pct(rate)}"
        return (
            f"only {base.ref.label} was replayed ({adv} of {n} samples flagged{tail}): "
            "name a second version to compare"
        )
    if adv == 0:
        return (
            f"none of the {n} samples is flagged as adversarial; the other versions change "
            f"{_pct(summary.flip_rate)} of {base.ref.label}'s predictions"
        )
    labelled = base.labelled_adversarial
    if labelled == 0:
        other = max(summary.versions[1:], key=lambda v: 1 - v.agreement)
        contrast = (
            ""
            if summary.flip_rate_other is None
            else f" (unflagged samples: {_pct(summary.flip_rate_other)} flip)"
        )
        return (
            f"{_pct(summary.flip_rate_adversarial or 0.0)} of the {adv} flagged inputs get "
            f"another answer from {_others(summary)}{contrast}; they carry no true labels, so "
            f"which version is right is unknown (most different: {other.ref.label})"
        )
    if base.fooled == 0:
        return (
            f"{base.ref.label} labels all {labelled} labelled flagged inputs correctly: "
            "these inputs do not fool it, switching versions would not help"
        )
    best = max(summary.resistance, key=lambda r: (r.resisted, -_success(summary, r.ref)))
    best_summary = next(v for v in summary.versions if v.ref == best.ref)
    helps = (best.rate or 0.0) >= HELPS_AT and (best_summary.success_rate or 0.0) < (
        base.success_rate or 0.0
    )
    move = "rolling back to it" if best.ref.spec == "previous" else "switching to it"
    action = f"{move} would help" if helps else f"{move} would not help"
    return (
        f"{best.ref.label} resists {_pct(best.rate or 0.0)} ({best.resisted} of "
        f"{best.fool_baseline}) of the flagged inputs that fool {base.ref.label} "
        f"(adversarial success {_pct(best_summary.success_rate or 0.0)} vs "
        f"{_pct(base.success_rate or 0.0)}): {action}"
    )


def _others(summary: ReplaySummary) -> str:
    base = summary.versions[0].ref.label
    others = ", ".join(v.ref.label for v in summary.versions[1:])
    return f"{others} than from {base}"


def _success(summary: ReplaySummary, ref: VersionRef) -> float:
    found = next(v for v in summary.versions if v.ref == ref)
    return found.success_rate or 0.0


def _mean(values: NDArray[Any], mask: NDArray[np.bool_]) -> float | None:
    return float(values[mask].mean(dtype=np.float64)) if mask.any() else None


def _count(flags: NDArray[np.bool_]) -> int:
    # count_nonzero: ~8x faster than a mean or a sum on 10,000 booleans.
    return int(np.count_nonzero(flags))


def _rate(flags: NDArray[np.bool_]) -> float:
    return _count(flags) / max(int(flags.shape[0]), 1)


def _rate_among(flags: NDArray[np.bool_], mask: NDArray[np.bool_]) -> float | None:
    among = _count(mask)
    return _count(flags & mask) / among if among else None


def _pct(rate: float) -> str:
    return f"{rate * 100:.0f}%"
