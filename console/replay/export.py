"""A replay as a table: one row per sample, per-version columns (``prediction_v2``,
``confidence_v2``, ``squeeze_score_v2``, ``fooled_v2``), written to Parquet with the summary in
the file's metadata (``pandas.read_parquet(path).attrs["aml_replay"]``).

pandas and pyarrow are imported here only, when a frame is asked for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from console.errors import ConfigError
from console.replay.model import NO_LABEL, ReplayResult


def to_frame(result: ReplayResult) -> Any:
    """A ``pandas.DataFrame`` of the replay (``attrs["aml_replay"]``: everything but the rows)."""
    import pandas as pd  # type: ignore[import-untyped]

    samples = result.samples
    records = samples.records
    labelled = samples.labels != NO_LABEL
    judged = samples.adversarial & labelled
    columns: dict[str, Any] = {
        "sample_id": [r.sample_id for r in records],
        "time": pd.to_datetime([r.time for r in records], utc=True),
        "client": [r.client for r in records],
        "served_version": [r.version for r in records],
        "served_prediction": np.array([r.prediction for r in records], dtype=np.int64),
        "detector_score": np.array([r.detector_score for r in records], dtype=np.float64),
        "adversarial": samples.adversarial,
        "label": pd.Series(samples.labels, dtype="Int64").mask(~labelled),
        "flip": result.flips,
    }
    for run in result.runs:
        v = run.ref.version
        columns[f"prediction_v{v}"] = run.labels
        columns[f"confidence_v{v}"] = run.confidence
        if run.squeeze_scores is not None:
            columns[f"squeeze_score_v{v}"] = run.squeeze_scores
        fooled = pd.Series(run.labels != samples.labels, dtype="boolean")
        columns[f"fooled_v{v}"] = fooled.mask(~judged)
    columns["input"] = list(samples.x)
    frame = pd.DataFrame(columns)
    summary = result.as_dict()
    summary.pop("samples")
    frame.attrs["aml_replay"] = summary
    return frame


def write_parquet(result: ReplayResult, path: Path) -> int:
    """Write the replay to ``path`` (atomically: a temp file renamed); the number of rows."""
    try:
        import pyarrow  # type: ignore[import-untyped]  # noqa: F401 - pandas' Parquet engine
    except ImportError:
        raise ConfigError("--output parquet needs pyarrow: pip install pyarrow") from None
    frame = to_frame(result)
    # attrs must be JSON for pyarrow's metadata: the summary is, once the datetimes are text.
    frame.attrs["aml_replay"] = json.loads(json.dumps(frame.attrs["aml_replay"], default=str))
    if path.parent and not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: {path.parent} is not a directory")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(frame)
