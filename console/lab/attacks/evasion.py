"""Evasion: adversarial examples made with the Adversarial Robustness Toolbox (ART).

Methods:
- ``fgsm`` / ``pgd`` (transfer, white box on a surrogate): a logistic regression the attacker
  trains on its own labelled pool (the digits train split, no gateway queries); ART crafts the
  examples on it within an L-infinity ``eps`` (pixel units, 0..16) and they are sent to the
  gateway. Queries: one clean and one adversarial request per sample.
- ``hsj`` (HopSkipJump, black box against the endpoint): ART queries the gateway through a
  ``BlackBoxClassifier`` whose predictions are V2 requests, bounded by the query budget.

Success rate = adversarial inputs the gateway labels differently from the true label, over
the samples it labelled correctly when clean. Each adversarial input is sent alone, so its
trace id (``X-Trace-Id``) identifies its span and, when flagged, its sample-store record.

ART costs ~2.4 s to import: it is imported only when this attack runs.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from console.config import Settings
from console.errors import LabError
from console.lab.attacks.client import V2Client
from console.lab.attacks.common import (
    PIXEL_MAX,
    Bounds,
    Clock,
    Rows,
    RunInfo,
    clip_pixels,
    digits_split,
    require_loopback_target,
    run_info,
)

Method = Literal["fgsm", "pgd", "hsj"]
HSJ_BATCH = 128
HSJ_CALL_TIMEOUT_S = 30.0


@dataclass
class EvasionReport:
    run: RunInfo
    client: str
    model: str
    method: str
    eps: float | None
    """L-infinity bound in pixel units (transfer methods); HopSkipJump is unbounded."""
    samples: int
    attacked: int
    """Samples the gateway labelled correctly when clean and that got an adversarial input."""
    evaded: int
    success_rate: float | None
    queries_used: int
    requests: int
    outcomes: dict[str, Any]
    surrogate_success_rate: float | None
    """Transfer methods: how often the examples fool the surrogate they were made on."""
    mean_l2: float | None
    mean_linf: float | None
    served_versions: list[str]
    trace_ids: list[str] = field(default_factory=list)
    """Of the adversarial requests, in order."""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "run": self.run.as_dict()}


class _Exhausted(Exception):
    """The query budget, the deadline or a block ended a black-box attack."""


async def run_evasion(
    settings: Settings,
    client: str = "mallory-2",
    *,
    model: str | None = None,
    method: Method = "fgsm",
    samples: int = 50,
    eps: float = 3.0,
    budget: int = 5000,
    duration: float = 120.0,
    seed: int = 0,
    hsj_max_iter: int = 10,
    hsj_max_eval: int = 100,
) -> EvasionReport:
    """Attack ``samples`` held-out digits; stop at ``budget`` queries or ``duration`` s."""
    bounds = Bounds(budget, duration)
    if not 1 <= samples <= 1000:
        raise LabError("samples: between 1 and 1000")
    if method not in ("fgsm", "pgd", "hsj"):
        raise LabError(f"unknown evasion method {method!r} (known: fgsm, pgd, hsj)")
    require_loopback_target(settings.gateway.url)
    model_name = model or settings.models.served[0]
    rng = np.random.default_rng(seed)
    split = digits_split()
    pick = rng.choice(len(split.x_test), min(samples, len(split.x_test)), replace=False)
    x, y = split.x_test[pick], split.y_test[pick]
    await asyncio.to_thread(_import_art)  # seconds: before the clock starts
    clock = Clock(bounds.duration_s)
    async with V2Client(settings.gateway.url, model_name, clock) as v2:
        await v2.check_ready()
        run = _Run(v2, client, bounds, clock)
        clean = await run.labels_one_by_one(x)
        correct = [i for i in range(len(x)) if clean[i] == y[i]]
        surrogate_rate: float | None = None
        if method == "hsj":
            adversarial = await _hsj(run, x[correct], hsj_max_iter, hsj_max_eval, seed)
        else:
            adversarial, surrogate_rate = await asyncio.to_thread(
                _transfer, method, x[correct], y[correct], eps, seed
            )
        done = [i for i, a in zip(correct, adversarial, strict=True) if a is not None]
        adv_rows = clip_pixels(
            np.stack([a for a in adversarial if a is not None])
            if done
            else np.zeros((0, 64), np.float32)
        )
        adv_labels = await run.labels_one_by_one(adv_rows, keep_traces=True)
        ended = run.stopped or ("max_requests" if run.budget_spent else "done")
        info = run_info(clock, ended, seed)
        stats = v2.stats.get(client)
    attacked = [(i, lab) for i, lab in zip(done, adv_labels, strict=True) if lab is not None]
    evaded = sum(1 for i, lab in attacked if lab != y[i])
    deltas = adv_rows - x[done]
    return EvasionReport(
        run=info,
        client=client,
        model=model_name,
        method=method,
        eps=None if method == "hsj" else eps,
        samples=len(x),
        attacked=len(attacked),
        evaded=evaded,
        success_rate=round(evaded / len(attacked), 4) if attacked else None,
        queries_used=run.queries,
        requests=stats.requests if stats else 0,
        outcomes=stats.outcomes.as_dict() if stats else {},
        surrogate_success_rate=surrogate_rate,
        mean_l2=round(float(np.linalg.norm(deltas, axis=1).mean()), 3) if done else None,
        mean_linf=round(float(np.abs(deltas).max(axis=1).mean()), 3) if done else None,
        served_versions=sorted(run.versions),
        trace_ids=run.trace_ids,
    )


class _Run:
    """Queries on behalf of one attacker, counted against the budget and the deadline."""

    def __init__(self, v2: V2Client, client: str, bounds: Bounds, clock: Clock) -> None:
        self.v2, self.client, self.bounds, self.clock = v2, client, bounds, clock
        self.queries = 0
        self.reserved = 0
        """Queries kept back for sending the finished adversarial inputs."""
        self.budget_spent = False
        self.stopped: str | None = None
        self.trace_ids: list[str] = []
        self.versions: set[str] = set()

    def _refuse(self, rows: int, *, reserve: int = 0) -> bool:
        if self.queries + rows > self.bounds.max_requests - reserve:
            self.stopped = "max_requests"
        elif self.clock.expired():
            self.stopped = "duration"
        return self.stopped is not None

    async def labels(self, rows: Rows) -> NDArray[np.int64]:
        """One request of ``rows``; raises _Exhausted when it may not or was refused."""
        if self._refuse(len(rows), reserve=self.reserved):
            raise _Exhausted(self.stopped)
        self.queries += len(rows)
        result = await self.v2.infer(self.client, rows)
        if result.outcome == "blocked":
            self.stopped = "blocked"
        if result.labels is None:
            raise _Exhausted(result.outcome)
        self.versions.add(str(result.version))
        return result.labels

    async def labels_one_by_one(self, rows: Rows, *, keep_traces: bool = False) -> list[int | None]:
        """Each row alone (its own trace); None where it was not sent or not answered."""
        out: list[int | None] = []
        for row in rows:
            if self._refuse(1):
                out.append(None)
                continue
            self.queries += 1
            result = await self.v2.infer(self.client, row[None, :])
            if keep_traces and result.trace_id:
                self.trace_ids.append(result.trace_id)
            if result.outcome == "blocked":
                self.stopped = "blocked"
            if result.labels is None:
                out.append(None)
                continue
            self.versions.add(str(result.version))
            out.append(int(result.labels[0]))
        return out


def _transfer(
    method: Method, x: Rows, y: NDArray[np.int64], eps: float, seed: int
) -> tuple[list[Rows | None], float | None]:
    """Examples crafted on a local surrogate, and how often they fool that surrogate."""
    if len(x) == 0:
        return [], None
    from sklearn.linear_model import LogisticRegression

    art = _import_art()
    split = digits_split()
    surrogate = LogisticRegression(max_iter=2000, random_state=seed).fit(
        split.x_train / PIXEL_MAX, split.y_train
    )
    # The surrogate works on x / 16: ART divides by 16 itself, so gradients are in pixels.
    classifier = art.SklearnClassifier(
        model=surrogate, clip_values=(0.0, PIXEL_MAX), preprocessing=(0.0, PIXEL_MAX)
    )
    if method == "fgsm":
        attack: Any = art.FastGradientMethod(classifier, eps=eps)
    else:
        attack = art.ProjectedGradientDescent(
            classifier, eps=eps, eps_step=eps / 4, max_iter=10, verbose=False
        )
    adversarial = clip_pixels(attack.generate(x.astype(np.float32)))
    fooled = float((classifier.predict(adversarial).argmax(axis=1) != y).mean())
    return list(adversarial), round(fooled, 4)


async def _hsj(run: _Run, x: Rows, max_iter: int, max_eval: int, seed: int) -> list[Rows | None]:
    """HopSkipJump per sample against the gateway, until the budget or deadline runs out."""
    loop = asyncio.get_running_loop()

    def predict(rows: NDArray[Any]) -> NDArray[np.float32]:
        future = asyncio.run_coroutine_threadsafe(run.labels(clip_pixels(rows)), loop)
        labels = future.result(timeout=HSJ_CALL_TIMEOUT_S)
        return np.eye(10, dtype=np.float32)[labels]

    def attack_one(row: Rows) -> Rows | None:
        art = _import_art()
        np.random.seed(seed)  # ART's HopSkipJump draws from numpy's global generator
        box = art.BlackBoxClassifier(
            predict, input_shape=(64,), nb_classes=10, clip_values=(0.0, PIXEL_MAX)
        )
        hsj = art.HopSkipJump(
            box,
            targeted=False,
            max_iter=max_iter,
            max_eval=max_eval,
            init_eval=10,
            batch_size=HSJ_BATCH,
            verbose=False,
        )
        try:
            return clip_pixels(hsj.generate(row[None, :].astype(np.float32))[0])
        except _Exhausted:
            return None

    out: list[Rows | None] = []
    run.reserved = len(x)  # one query per sample to send its adversarial input afterwards
    for row in x:
        out.append(None if run.stopped else await asyncio.to_thread(attack_one, row))
    run.reserved = 0
    if run.stopped == "max_requests":
        run.stopped, run.budget_spent = None, True  # the reserve sends the finished ones
    return out


class _Art:
    """The few ART names used here, imported on first use."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # ART warns at import about optional frameworks (PyTorch, TensorFlow) it lacks.
            warnings.simplefilter("ignore")
            from art.attacks.evasion import (
                FastGradientMethod,
                HopSkipJump,
                ProjectedGradientDescent,
            )
            from art.estimators.classification import (
                BlackBoxClassifier,
                SklearnClassifier,
            )
        self.FastGradientMethod: Callable[..., Any] = FastGradientMethod
        self.ProjectedGradientDescent: Callable[..., Any] = ProjectedGradientDescent
        self.HopSkipJump: Callable[..., Any] = HopSkipJump
        self.SklearnClassifier: Callable[..., Any] = SklearnClassifier
        self.BlackBoxClassifier: Callable[..., Any] = BlackBoxClassifier


_art: _Art | None = None


def _import_art() -> _Art:
    global _art
    if _art is None:
        try:
            _art = _Art()
        except ImportError as exc:
            raise LabError(
                f"{exc.name} not installed: pip install adversarial-robustness-toolbox"
            ) from None
    return _art


__all__ = ["EvasionReport", "run_evasion"]
