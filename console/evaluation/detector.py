"""The detector's figures: feature squeezing as the gateway scores inputs (``[detectors]``
squeezers, flagged at ``flag_threshold``, ``console/detectors/squeezing.py``): its false-positive
rate on clean held-out inputs (M3) and its recall on an attack's successful adversarial inputs
(M4)."""

from __future__ import annotations

from typing import Any

import numpy as np

from console.config import DetectorsSection
from console.detectors.squeezing import SQUEEZERS, FeatureSqueezer
from console.evaluation.onnx_model import CountingModel, Rows


class Detector:
    def __init__(self, session: Any, section: DetectorsSection) -> None:
        # A model of its own: the detector's calls are not an attack's queries.
        self._model = CountingModel(session)
        self._squeezer = FeatureSqueezer(tuple((n, SQUEEZERS[n]) for n in section.squeezers))
        self.threshold = section.flag_threshold

    def scores(self, x: Rows) -> Rows:
        if len(x) == 0:
            return np.zeros(0, np.float32)
        probabilities = self._model.probabilities(self._squeezer.batch(x))
        return self._squeezer.scores(probabilities, len(x))

    def flag_rate(self, x: Rows) -> float | None:
        """Share of ``x`` scored at or above the threshold; None for no inputs."""
        if len(x) == 0:
            return None
        return round(float((self.scores(x) >= self.threshold).mean()), 4)
