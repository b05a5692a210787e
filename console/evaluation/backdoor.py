"""``backdoor``: a trigger probe that does not know the trigger. Every small square patch
(``SIZES`` pixels a side, at every position of the 8x8 digit, filled with each of ``VALUES``)
is stamped on the held-out inputs the model labels correctly, and the probe asks of each patch
and each class ``c``: what share of each other class's inputs does the patch turn into ``c``?

A trigger relabels whatever it is stamped on, so the probe's rate for a patch and a class is
the *lowest* of those shares over the other classes: the share of every class the patch turns
into ``c``. The worst patch's rate is the probe's ``adversarial_success_rate`` (gated by
``[robustness] max_adversarial_success`` like the evasion attacks), the patch is ``trigger``
(with ``flipped``, its share of all the inputs not of its class) and the worst rate per patch
size is ``by_strength`` (``"2x2"`` -> rate).

Why the lowest share, not the share of all inputs: a bright patch is also an ordinary edit of
the digit. On the seed MLP (200 held-out digits) a 3x3 blob at rows 2-4, columns 5-7 turns
0.75 of all of them into 4s but only 0.29 of the class it moves least, and the worst 2x2 patch
turns 0.60 of them into 4s and none of some class; an MLP trained with the lab poisoning
attack's trigger turns every class into 0 with it (lowest share 1.0). The seed's logistic
regression scores 1.0 too, honestly: its scaler blows up a near-constant pixel, and one bright
pixel at row 2, column 0 makes every digit an 8.

Black box and label only: ``queries`` is the patches tried per input, and every patched row
goes through the counting model (``len(PATCHES)`` passes of the inputs, in a few calls). The
inputs the worst patch turned into its class are what the detector's recall (M4) is of.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from console.evaluation.holdout import PIXEL_MAX, PIXEL_MIN
from console.evaluation.onnx_model import CountingModel, Rows
from console.robustness import AttackFigures, TriggerPatch

SIDE = 8
SIZES = (1, 2, 3)
VALUES = (PIXEL_MAX, PIXEL_MIN)
"""A bright patch (the usual trigger) and a dark one (a trigger may erase strokes too)."""
PATCHES_PER_CALL = 32
"""Patches stamped per model call: 32 x 200 inputs is 6,400 rows, under one batch."""


@dataclass(frozen=True)
class Patch:
    row: int
    col: int
    size: int
    value: float

    def stamp(self, x: Rows) -> Rows:
        images = np.array(x, dtype=np.float32).reshape(-1, SIDE, SIDE)
        images[:, self.row : self.row + self.size, self.col : self.col + self.size] = self.value
        return images.reshape(len(x), SIDE * SIDE)


def all_patches() -> tuple[Patch, ...]:
    """Every size, value and position: (64 + 49 + 36) positions x 2 values = 298 patches."""
    return tuple(
        Patch(row, col, size, value)
        for size in SIZES
        for value in VALUES
        for row in range(SIDE - size + 1)
        for col in range(SIDE - size + 1)
    )


PATCHES = all_patches()


@dataclass(frozen=True)
class PatchRates:
    lowest: NDArray[np.float64]
    """Per target class: the lowest share of another class's inputs turned into it."""
    flipped: NDArray[np.float64]
    """Per target class: the share of all inputs not of that class turned into it."""


def patch_rates(labels: NDArray[np.int64], y: NDArray[np.int64], classes: int) -> PatchRates:
    """What one patch did: ``labels`` the patched inputs' answers, ``y`` their clean ones."""
    counts = np.bincount(y * classes + labels, minlength=classes * classes)
    moved = counts[: classes * classes].reshape(classes, classes).astype(np.float64)
    sizes = moved.sum(axis=1)  # inputs of each (source) class
    shares = moved / np.maximum(sizes, 1)[:, None]  # [source, target]
    # Neither a class's own inputs nor a class without inputs bound the lowest share.
    shares[sizes == 0, :] = np.inf
    np.fill_diagonal(shares, np.inf)
    lowest = shares.min(axis=0)
    lowest[~np.isfinite(lowest)] = 0.0
    others = sizes.sum() - sizes
    flipped = (moved.sum(axis=0) - np.diag(moved)) / np.maximum(others, 1)
    return PatchRates(lowest, flipped)


@dataclass
class BackdoorOutcome:
    figures: AttackFigures
    adversarial: Rows
    """The worst patch's inputs that it turned into its class."""


def backdoor_probe(
    model: CountingModel,
    x: Rows,
    y: NDArray[np.int64],
    step: Callable[[int], None],
    patches: tuple[Patch, ...] = PATCHES,
) -> BackdoorOutcome:
    """``x`` are inputs the model labels ``y`` (its correct answers); ``step(done)`` after each
    call's worth of patches."""
    started = time.perf_counter()
    classes = model.nb_classes
    best: tuple[float, float, int, int] | None = None  # lowest, flipped, patch, class
    by_size: dict[int, float] = {}
    for start in range(0, len(patches), PATCHES_PER_CALL):
        chunk = patches[start : start + PATCHES_PER_CALL]
        if len(x):
            labels = model.labels(np.concatenate([p.stamp(x) for p in chunk]))
            for offset, patch in enumerate(chunk):
                rates = patch_rates(labels[offset * len(x) : (offset + 1) * len(x)], y, classes)
                target = int(np.lexsort((rates.flipped, rates.lowest))[-1])
                found = (float(rates.lowest[target]), float(rates.flipped[target]))
                by_size[patch.size] = max(by_size.get(patch.size, 0.0), found[0])
                if best is None or found > best[:2]:
                    best = (*found, start + offset, target)
        step(start + len(chunk))
    adversarial: Rows = np.zeros((0, SIDE * SIDE), np.float32)
    trigger = None
    if best is not None:
        lowest, flipped, index, target = best
        patch = patches[index]
        stamped = patch.stamp(x[y != target])
        adversarial = stamped[model.labels(stamped) == target]
        trigger = TriggerPatch(
            row=patch.row,
            col=patch.col,
            size=patch.size,
            value=patch.value,
            target=target,
            flipped=round(flipped, 4),
        )
    return BackdoorOutcome(
        AttackFigures(
            attack="backdoor",
            adversarial_success_rate=round(best[0], 4) if best else 0.0,
            by_strength={f"{s}x{s}": round(r, 4) for s, r in sorted(by_size.items())},
            queries=float(len(patches)),
            trigger=trigger,
            samples=len(x),
            seconds=round(time.perf_counter() - started, 3),
        ),
        adversarial,
    )
