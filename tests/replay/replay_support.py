"""Helpers for the replay tests: digits and FGSM-perturbed digits, sample-store files in the
gateway's format (plus the optional ``label``), direct onnxruntime on the same arrays, and the
CLI through Typer's CliRunner."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from console.cli.main import app
from console.detectors.squeezing import FeatureSqueezer
from console.lab.gateway.samples import Sample


@dataclass(frozen=True)
class Digits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits() -> Digits:
    """The seed's split (test 25 %, random_state=0, stratified), float32 pixels 0..16."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y, test_size=0.25, random_state=0, stratify=y
    )
    return Digits(x_train, y_train, x_test, y_test)


def fgsm(data: Digits, x: np.ndarray, y: np.ndarray, eps: float = 3.0) -> np.ndarray:
    """FGSM (L-inf ``eps`` pixels) on a logistic regression trained on the train split: the
    lab's evasion attack, transferred to the registry's versions."""
    from sklearn.linear_model import LogisticRegression

    surrogate = LogisticRegression(max_iter=3000).fit(data.x_train / 16, data.y_train)
    gradient = (surrogate.predict_proba(x / 16) - np.eye(10)[y]) @ surrogate.coef_
    return np.clip(x + eps * np.sign(gradient), 0, 16).astype(np.float32)


def record(
    n: int,
    when: datetime,
    row: np.ndarray,
    *,
    model: str,
    client: str = "alice",
    flagged: bool = False,
    score: float = 0.1,
    label: int | None = None,
    version: str = "2",
) -> dict[str, Any]:
    """One sample-store line as the gateway writes it (its ``Sample``), plus ``label`` if
    given (the gateway never knows it; a labelled attack suite does)."""
    values = np.asarray(row, dtype=np.float32)
    sample = Sample(
        sample_id=f"{n:016x}",
        time=when.isoformat(),
        client=client,
        model=model,
        version=version,
        detector_score=score,
        extraction_score=0.1,
        prediction=0,
        confidence=0.5,
        flagged=flagged,
        trace_id=f"{n:032x}",
        input_sha256=hashlib.sha256(values.tobytes()).hexdigest(),
        input=values.astype(float).tolist(),
    )
    line = dict(vars(sample))
    if label is not None:
        line["label"] = int(label)
    return line


def write_store(root: Path, records: Sequence[Mapping[str, Any]], name: str = "1") -> None:
    """``<root>/dt=<day>/samples-<name>.jsonl``, one file per day, appended."""
    for rec in records:
        day = str(rec["time"])[:10]
        path = root / f"dt={day}" / f"samples-{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(rec, separators=(",", ":")) + "\n")


def direct(sessions: Mapping[str, Any], x: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per version: labels, confidence and squeeze scores from onnxruntime called directly."""
    squeezer = FeatureSqueezer()
    out = {}
    for version, session in sessions.items():
        labels, probabilities = session.run(["label", "probabilities"], {"input": x})
        _, squeezed = session.run(["label", "probabilities"], {"input": squeezer.batch(x)})
        out[version] = {
            "labels": np.asarray(labels, dtype=np.int64),
            "confidence": np.asarray(probabilities).max(axis=1),
            "squeeze": squeezer.scores(np.asarray(squeezed), len(x)),
        }
    return out


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def invoke(args: Sequence[str], env: Mapping[str, str]) -> CliResult:
    """``aml-console <args>`` in process (CliRunner), with ``env`` (CONSOLE_CONFIG...)."""
    result = CliRunner().invoke(app, list(args), env=dict(env))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)
