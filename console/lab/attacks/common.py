"""What traffic and attacks share: the loopback guard, bounds, seeded data, report pieces.

Nothing here imports scikit-learn at module level: ``digits_split`` does, when called.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import NDArray

from console.errors import LabError
from console.urls import redact_url

Rows = NDArray[np.float32]
PIXEL_MIN, PIXEL_MAX = 0.0, 16.0
WIDTH = 64
DATA_SPLIT_SEED = 0
"""The seed's split (``console.lab.seed``): train is the attacker's public pool, test the
held-out digits benign clients send and agreement is measured on."""


def require_loopback_target(url: str, what: str = "gateway") -> str:
    """``url`` unchanged if its host is 127.0.0.0/8, ::1 or ``localhost``; else LabError.

    Called before any client or socket exists, so a refused URL never sees a packet.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise LabError(f"{what} url {shown!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise LabError(f"{what} url {shown!r} must be http:// or https://")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LabError(
            f"refusing to send lab traffic to {shown!r}: host {host or '(none)'!r} is not loopback;"
            " traffic and attacks only target 127.0.0.0/8, ::1 or localhost"
        )
    return url


@dataclass(frozen=True)
class Bounds:
    """Every run stops by itself: after ``max_requests`` requests or ``duration_s`` seconds."""

    max_requests: int
    duration_s: float

    def __post_init__(self) -> None:
        if self.max_requests < 1:
            raise LabError("the request budget must be at least 1")
        if not 0 < self.duration_s <= 3600:
            raise LabError("the duration must be within (0, 3600] seconds")


class Clock:
    """Seconds since the run started, and the deadline of its bounds."""

    def __init__(self, duration_s: float) -> None:
        self.started_at = datetime.now(UTC)
        self._start = time.monotonic()
        self.deadline = self._start + duration_s

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline


def clip_pixels(x: NDArray[Any]) -> Rows:
    """Float32 rows the gateway accepts: pixel values within 0..16."""
    return np.clip(np.asarray(x, dtype=np.float32), PIXEL_MIN, PIXEL_MAX).astype(np.float32)


@dataclass(frozen=True)
class DigitsSplit:
    x_train: Rows
    y_train: NDArray[np.int64]
    x_test: Rows
    y_test: NDArray[np.int64]


_split: DigitsSplit | None = None


def digits_split() -> DigitsSplit:
    """scikit-learn's digits, split as the seed splits them (cached per process)."""
    global _split
    if _split is None:
        try:
            from sklearn.datasets import load_digits
            from sklearn.model_selection import train_test_split
        except ImportError as exc:
            raise LabError(f"{exc.name} not installed: pip install -e '.[lab]'") from None
        x, y = load_digits(return_X_y=True)
        x_train, x_test, y_train, y_test = train_test_split(
            x.astype(np.float32), y, test_size=0.25, random_state=DATA_SPLIT_SEED, stratify=y
        )
        _split = DigitsSplit(x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))
    return _split


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 in milliseconds (None without values)."""
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    q = np.percentile(np.asarray(values) * 1000.0, [50, 95, 99])
    return {
        "p50_ms": round(float(q[0]), 2),
        "p95_ms": round(float(q[1]), 2),
        "p99_ms": round(float(q[2]), 2),
    }


@dataclass
class RunInfo:
    """When a run happened and why it stopped, common to every report."""

    started: str
    duration_s: float
    stopped: str
    """``max_requests``, ``duration``, ``blocked`` (gave up after consecutive 403s),
    ``done`` (ran out of work), ``error``."""
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_info(clock: Clock, stopped: str, seed: int) -> RunInfo:
    return RunInfo(clock.started_at.isoformat(), round(clock.elapsed(), 3), stopped, seed)


@dataclass
class Outcomes:
    """Counts of answers by outcome (the gateway's labels: 403 blocked, 429 throttled)."""

    ok: int = 0
    blocked: int = 0
    throttled: int = 0
    other: int = 0
    first_at_s: dict[str, float] = field(default_factory=dict)
    """Seconds into the run of the first answer of each outcome."""
    last_at_s: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.ok + self.blocked + self.throttled + self.other

    def add(self, outcome: str, at_s: float) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.first_at_s.setdefault(outcome, round(at_s, 3))
        self.last_at_s[outcome] = round(at_s, 3)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}
