"""The held-out set an evaluation runs on: scikit-learn's digits split as the lab's training
splits them, or a ``.npz`` file of arrays ``x`` (float32 [N, 64], pixels 0..16) and ``y``
(labels), with an optional ``x_pool`` (unlabelled inputs the extraction attack may query).

The digits split is repeated here on purpose, not imported from ``console.lab``: the
evaluation unit sits below the lab (docs/architecture.md, Layers). ``DIGITS_SPLIT`` is the one
place its parameters live; ``console/lab/seed_train.py`` must split the same way.
"""

from __future__ import annotations

import functools
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from console.errors import ConsoleError

PIXEL_MIN, PIXEL_MAX, WIDTH = 0.0, 16.0, 64
MAX_ROWS = 100_000


@dataclass(frozen=True)
class DigitsSplit:
    test_size: float = 0.25
    random_state: int = 0
    stratify: bool = True

    @property
    def holdout_id(self) -> str:
        """``digits-split:<params>``: what a record names (``[robustness] holdout``)."""
        return (
            f"digits-split:test_size={self.test_size:g},random_state={self.random_state},"
            f"stratify={self.stratify}"
        )


DIGITS_SPLIT = DigitsSplit()
"""As ``console/lab/seed_train.train_seed_models`` splits load_digits (test 25 %, random_state
0, stratified by label)."""


class HoldoutError(ConsoleError):
    """The held-out set cannot be read or is not the digits contract."""


@dataclass(frozen=True)
class Holdout:
    x: NDArray[np.float32]
    y: NDArray[np.int64]
    pool: NDArray[np.float32]
    """Inputs the extraction attacker starts from (the digits train split: the attacker's
    public data; for a file, its ``x_pool`` or else ``x`` itself, which flatters the attacker)."""
    source: str
    holdout_id: str = ""
    """What the record names: ``digits-split:<params>`` or ``sha256:<hex of x and y bytes>``."""

    def pick(self, samples: int, seed: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """``samples`` rows (all of them if fewer), drawn without replacement by ``seed``."""
        rng = np.random.default_rng(seed)
        n = min(samples, len(self.x))
        index = np.sort(rng.choice(len(self.x), n, replace=False))
        return self.x[index], self.y[index]


def missing_extra(exc: ImportError) -> ConsoleError:
    return ConsoleError(
        f"{exc.name} not installed: eval needs the lab extra (pip install -e '.[lab]')"
    )


def load_holdout(path: Path | None = None) -> Holdout:
    """The digits split's test part (default), or the file ``path``."""
    return _from_file(path) if path is not None else _digits()


@functools.cache
def _digits() -> Holdout:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise missing_extra(exc) from None
    x, y = load_digits(return_X_y=True)
    split = DIGITS_SPLIT
    x_train, x_test, _, y_test = train_test_split(
        x.astype(np.float32),
        y,
        test_size=split.test_size,
        random_state=split.random_state,
        stratify=y if split.stratify else None,
    )
    return Holdout(
        np.ascontiguousarray(x_test, dtype=np.float32),
        np.asarray(y_test, dtype=np.int64),
        np.ascontiguousarray(x_train, dtype=np.float32),
        "digits (test split)",
        split.holdout_id,
    )


def _from_file(path: Path) -> Holdout:
    try:
        # allow_pickle=False: an object array in the file is refused, never unpickled.
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("x", "y", "x_pool") if k in data.files}
    except FileNotFoundError:
        raise HoldoutError(f"holdout file {path} does not exist") from None
    except (ValueError, zipfile.BadZipFile, EOFError):
        # numpy's text (for random bytes: "contains pickled data ... allow_pickle=") misleads.
        raise HoldoutError(
            f"holdout file {path} is not a .npz of numeric arrays (np.savez)"
        ) from None
    except OSError as exc:
        raise HoldoutError(f"holdout file {path} cannot be read: {exc.strerror or exc}") from None
    if "x" not in arrays or "y" not in arrays:
        raise HoldoutError(f"holdout file {path} needs arrays x and y")
    x = _rows(arrays["x"], path, "x")
    y = np.asarray(arrays["y"])
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise HoldoutError(f"holdout file {path}: y must be {len(x)} integer labels")
    pool = _rows(arrays["x_pool"], path, "x_pool") if "x_pool" in arrays else x
    labels = np.ascontiguousarray(y.astype(np.int64))
    digest = hashlib.sha256(x.tobytes() + labels.tobytes()).hexdigest()
    return Holdout(x, labels, pool, f"file {path.name}", f"sha256:{digest}")


def _rows(raw: Any, path: Path, name: str) -> NDArray[np.float32]:
    rows = np.asarray(raw)
    if rows.ndim != 2 or rows.shape[1] != WIDTH or not 1 <= len(rows) <= MAX_ROWS:
        raise HoldoutError(
            f"holdout file {path}: {name} must be [N, {WIDTH}] with 1..{MAX_ROWS} rows, "
            f"got {list(rows.shape)}"
        )
    if not np.issubdtype(rows.dtype, np.number):
        raise HoldoutError(f"holdout file {path}: {name} is not numeric")
    values = rows.astype(np.float32)
    if not np.isfinite(values).all() or values.min() < PIXEL_MIN or values.max() > PIXEL_MAX:
        raise HoldoutError(f"holdout file {path}: {name} has pixels outside 0..16")
    return np.ascontiguousarray(values)
