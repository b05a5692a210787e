"""Model extraction: query the gateway at a high rate with synthetic inputs, keep the labels,
train a surrogate, and measure how often it agrees with the served model.

Strategies:
- ``jacobian`` (default), after Papernot et al. 2017: a few natural seeds from the attacker's
  own pool (the digits train split), then walks of ``walk_length`` steps of fixed L2 size along
  the sign of the current surrogate's gradient towards a random class, refitting the surrogate
  after each walk. Fixed-size steps make the distances between a client's queries far from
  normal, which is what the gateway's PRADA-style statistic flags.
- ``uniform``: independent uniform pixels. Measured: its minimum distances are close to normal,
  so the PRADA statistic stays near 0 (lower than benign clients') although the surrogate is
  about as good. A known blind spot of the statistic, kept to show it.

Agreement is measured by running the served version's ONNX artifact (sha256 checked against
its registry tag) locally on the held-out digits: it costs no gateway queries and leaves the
gateway's metrics to the attacker's own traffic.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from console.config import Settings
from console.errors import LabError
from console.lab.attacks.client import Pacer, V2Client
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

Strategy = Literal["jacobian", "uniform"]
SurrogateKind = Literal["logreg", "mlp"]


@dataclass
class ExtractionReport:
    run: RunInfo
    client: str
    model: str
    strategy: str
    requests: int
    queries_sent: int
    queries_answered: int
    queries_blocked: int
    queries_throttled: int
    queries_failed: int
    outcomes: dict[str, Any]
    latency: dict[str, float | None]
    served_version: str | None
    surrogate: str
    surrogate_agreement: float | None
    """Fraction of held-out digits on which surrogate and served model give the same label."""
    surrogate_accuracy: float | None
    agreement_measured_on: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "run": self.run.as_dict()}


async def run_extraction(
    settings: Settings,
    client: str = "mallory-1",
    *,
    model: str | None = None,
    rate: float = 50.0,
    budget: int = 3000,
    duration: float = 60.0,
    seed: int = 0,
    strategy: Strategy = "jacobian",
    batch: int = 1,
    walk_length: int = 30,
    step: float = 2.0,
    natural_seeds: int = 10,
    concurrency: int = 8,
    give_up_after: int = 25,
    surrogate: SurrogateKind = "logreg",
) -> ExtractionReport:
    """Run the attack until ``budget`` queries (rows), ``duration`` seconds, or
    ``give_up_after`` consecutive 403s (0: never give up)."""
    bounds = Bounds(budget, duration)
    require_loopback_target(settings.mlflow.url, "mlflow")
    if not 1 <= batch <= 1024:
        raise LabError("batch: between 1 and 1024 rows per request")
    require_loopback_target(settings.gateway.url)
    model_name = model or settings.models.served[0]
    rng = np.random.default_rng(seed)
    walker = _Walker(strategy, rng, walk_length, step, natural_seeds)
    await asyncio.to_thread(_fit, *_warm_up())  # imports scikit-learn before the clock starts
    clock = Clock(bounds.duration_s)
    async with V2Client(settings.gateway.url, model_name, clock) as v2:
        served = await v2.check_ready()
        pacer = Pacer(clock, rate, concurrency)
        stopped: str | None
        xs: list[Rows] = []
        ys: list[NDArray[np.int64]] = []
        rows_by_outcome = {"ok": 0, "blocked": 0, "throttled": 0, "other": 0}
        blocked_run = 0
        sent = 0

        async def query(rows: Rows) -> None:
            nonlocal blocked_run, served
            result = await v2.infer(client, rows)
            rows_by_outcome[result.outcome] += len(rows)
            if result.outcome == "ok" and result.labels is not None:
                xs.append(rows)
                ys.append(result.labels)
                served = result.version or served
                blocked_run = 0
            elif result.outcome == "blocked":
                blocked_run += 1

        async def send(walk: Rows) -> str | None:
            """None once the whole walk is sent, else why the run stops."""
            nonlocal sent
            for start in range(0, len(walk), batch):
                if give_up_after and blocked_run >= give_up_after:
                    return "blocked"
                if sent >= bounds.max_requests:
                    return "max_requests"
                if not await pacer.tick():
                    return "duration"
                rows = walk[start : start + batch][: bounds.max_requests - sent]
                sent += len(rows)
                pacer.launch(query(rows))
            return None

        fitted_on = 0
        while (stopped := await send(walker.next_walk())) is None:
            answered = sum(len(y) for y in ys)
            # Refit as the data grows by half: per walk would cost seconds of CPU per run.
            if answered >= max(20, int(1.5 * fitted_on)):
                x_fit, y_fit = np.concatenate(xs), np.concatenate(ys)
                walker.surrogate = await asyncio.to_thread(_fit, x_fit, y_fit, "logreg")
                fitted_on = answered
        await pacer.drain()
        info = run_info(clock, stopped, seed)
        stats = v2.stats.get(client)
    answered = sum(len(y) for y in ys)
    agreement = accuracy = None
    measured = "nothing: no query was answered"
    if xs:
        x_fit, y_fit = np.concatenate(xs), np.concatenate(ys)
        final = await asyncio.to_thread(_fit, x_fit, y_fit, surrogate)
        split = digits_split()
        served_labels = await asyncio.to_thread(
            served_predictions, settings, model_name, served, split.x_test
        )
        if final is not None:
            predicted = final.predict(split.x_test / PIXEL_MAX)
            agreement = round(float((predicted == served_labels).mean()), 4)
            accuracy = round(float((predicted == split.y_test).mean()), 4)
            measured = (
                f"served version {served}'s ONNX (sha256 checked) run locally on "
                f"{len(split.x_test)} held-out digits"
            )
        else:
            measured = "nothing: every answer had the same label"
    return ExtractionReport(
        run=info,
        client=client,
        model=model_name,
        strategy=strategy,
        requests=stats.requests if stats else 0,
        queries_sent=sent,
        queries_answered=answered,
        queries_blocked=rows_by_outcome["blocked"],
        queries_throttled=rows_by_outcome["throttled"],
        queries_failed=rows_by_outcome["other"],
        outcomes=stats.outcomes.as_dict() if stats else {},
        latency=stats.as_dict()["latency"] if stats else {},
        served_version=served,
        surrogate=surrogate,
        surrogate_agreement=agreement,
        surrogate_accuracy=accuracy,
        agreement_measured_on=measured,
    )


class _Walker:
    """Plans the next run of queries from the current surrogate (see the module docstring)."""

    def __init__(
        self,
        strategy: Strategy,
        rng: np.random.Generator,
        walk_length: int,
        step: float,
        natural_seeds: int,
    ) -> None:
        if walk_length < 1 or step <= 0:
            raise LabError("walk length must be >= 1 and step > 0")
        self.strategy = strategy
        self.rng = rng
        self.walk_length = walk_length
        self.step = step
        self.surrogate: Any = None
        seeds = None
        if strategy == "jacobian" and natural_seeds > 0:
            pool = digits_split().x_train
            seeds = pool[rng.choice(len(pool), min(natural_seeds, len(pool)), replace=False)]
        self.seeds = seeds

    def next_walk(self) -> Rows:
        if self.strategy == "uniform":
            return clip_pixels(self.rng.uniform(0.0, PIXEL_MAX, (self.walk_length, 64)))
        if self.seeds is not None:
            start = self.seeds[self.rng.integers(len(self.seeds))].astype(np.float64)
        else:
            start = self.rng.uniform(0.0, PIXEL_MAX, 64)
        target = int(self.rng.integers(10))
        points = [start]
        for _ in range(self.walk_length - 1):
            moved = _step(points[-1], self._direction(target), self.step)
            if moved is None:
                break
            points.append(moved)
        return clip_pixels(np.stack(points))

    def _direction(self, target: int) -> NDArray[np.float64]:
        """The surrogate's gradient towards ``target`` (a linear model: its weights)."""
        s = self.surrogate
        classes = list(getattr(s, "classes_", []))
        if s is None or target not in classes:
            return self.rng.normal(size=64)
        coef: NDArray[np.float64] = np.asarray(s.coef_, dtype=np.float64)
        if coef.shape[0] == 1:  # binary: one row, for the second class
            row: NDArray[np.float64] = coef[0] if target == classes[1] else -coef[0]
            return row
        row = coef[classes.index(target)]
        return row


def _step(x: NDArray[np.float64], gradient: NDArray[np.float64], size: float) -> Any:
    """``x`` moved by exactly ``size`` (L2) along the sign of ``gradient``, never across the
    pixel range: pixels at a bound that would leave it do not move. None if none can."""
    d = np.sign(gradient)
    d[((x <= 0.0) & (d < 0)) | ((x >= PIXEL_MAX) & (d > 0))] = 0.0
    norm = float(np.linalg.norm(d))
    if norm == 0.0:
        return None
    return np.clip(x + d * (size / norm), 0.0, PIXEL_MAX)


def _warm_up() -> tuple[Rows, NDArray[np.int64], SurrogateKind]:
    split = digits_split()
    return split.x_train[:20], split.y_train[:20], "logreg"


def _fit(x: Rows, y: NDArray[np.int64], kind: SurrogateKind) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if len(set(y.tolist())) < 2:
        return None
    model: Any = (
        LogisticRegression(max_iter=500)
        if kind == "logreg"
        else MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=0)
    )
    return model.fit(x / PIXEL_MAX, y)


def served_predictions(
    settings: Settings, model: str, version: str | None, x: Rows
) -> NDArray[np.int64]:
    """Labels of ``model`` version ``version`` on ``x``, from its ONNX artifact run locally
    after checking the artifact's sha256 against the version's ``onnx_sha256`` tag."""
    from console.lab.seed import describe_model, download_artifact

    described = describe_model(settings.mlflow.url, model)
    if described is None or version is None:
        raise LabError(f"model {model!r} version {version!r} not found in the registry")
    expected = described.sha256.get(version, "")
    onnx = download_artifact(settings.mlflow.url, model, version)
    if hashlib.sha256(onnx).hexdigest() != expected:
        raise LabError(f"{model} v{version}: artifact sha256 differs from its onnx_sha256 tag")
    return onnx_labels(onnx, x)


def onnx_labels(onnx: bytes, x: Rows) -> NDArray[np.int64]:
    try:
        import onnxruntime
    except ImportError as exc:
        raise LabError(f"{exc.name} not installed: pip install -e '.[lab]'") from None
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    labels = session.run(["label"], {"input": clip_pixels(x)})[0]
    return np.asarray(labels, dtype=np.int64)


__all__ = ["ExtractionReport", "onnx_labels", "run_extraction", "served_predictions"]
