"""The lab's traffic for the extraction statistic's tests: benign clients as
``console.lab.traffic`` sends them, the attacker as ``console.lab.attacks.extraction`` walks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from console.lab.attacks.common import clip_pixels, digits_split
from console.lab.attacks.extraction import _fit, _Walker
from console.lab.traffic import NOISE_SIGMA

THRESHOLD = 0.4
"""configs/prometheus/aml-alerts.yml, AMLExtractionSuspected."""


def benign(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
    pool = digits_split().x_test
    rows = pool[rng.integers(len(pool), size=n)]
    return clip_pixels(rows + rng.normal(0.0, NOISE_SIGMA, rows.shape))


def served_model() -> Any:
    """A stand-in for the served model (the seed's scaled logistic regression)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    split = digits_split()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
        split.x_train, split.y_train
    )


def walk(seed: int, served: Any) -> Iterator[NDArray[np.float32]]:
    """The lab's extraction queries one at a time, the surrogate refitted as the attack does."""
    walker = _Walker("jacobian", np.random.default_rng(seed), 30, 2.0, 10)
    xs: list[NDArray[np.float32]] = []
    fitted_on = 0
    while True:
        steps = walker.next_walk()
        yield from steps
        xs.append(steps)
        if (answered := sum(len(x) for x in xs)) >= max(20, int(1.5 * fitted_on)):
            x = np.concatenate(xs)
            walker.surrogate = _fit(x, served.predict(x), "logreg")
            fitted_on = answered


@pytest.fixture(scope="session")
def served() -> Any:
    """A stand-in for the served model (the seed's scaled logistic regression)."""
    return served_model()
