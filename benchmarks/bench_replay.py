"""Replay of 10,000 samples through 2 versions locally, against onnxruntime called directly on
the same arrays with the same sessions in the same run.

    python benchmarks/bench_replay.py [--config configs/lab.toml] [--samples 10000] [--repeat 30]

Brings up (or reuses) the config's MLflow with the project's launcher (which seeds ``digits``:
champion 2 the MLP, previous 1 the logistic regression), writes the samples (held-out digits
with pixel noise, a quarter flagged) to a temporary sample store in the gateway's line format,
and measures, best of ``--repeat`` with the cases interleaved, in one event loop:
  * replay:  the service end to end, as ``aml-console replay -o json`` runs it minus printing:
             store read, registry, artifact download + sha256 check, sessions, batches, scores;
  * engine:  what grows with the samples: the batch loop (one ``session.run`` per version per
             batch of 1024) and the scoring, on the selected arrays with prepared sessions;
             with feature squeezing (the default) and without (``--no-squeeze``);
  * direct:  ``session.run`` on the same arrays, once per version, the same sessions:
             ``inputs`` (the samples only: what predictions alone cost) and ``same_rows`` (the
             samples and their squeezed copies: the rows replay runs with squeezing on).
The ratios (throughput of replay over direct onnxruntime; target >= 0.8) are what to compare
across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from bench_support import digits_rows

from console.adapters.mlflow import MlflowRegistry
from console.config import Settings, load_settings
from console.lab import services
from console.lab.gateway.samples import Sample
from console.model_artifacts import check_sha256, make_plain_session
from console.replay.engine import Outputs, run_batches
from console.replay.model import ReplayRequest
from console.replay.runners import LocalRunner
from console.replay.scoring import summarise
from console.replay.selection import read_selection, sample_filter
from console.replay.service import replay_result, squeezer_of
from console.replay.versions import resolve_versions

VERSIONS = ("champion", "previous")


def _write_store(root: Path, model: str, n: int) -> None:
    rng = np.random.default_rng(0)
    base = digits_rows()
    rows = np.clip(base[rng.integers(0, len(base), n)] + rng.normal(0, 0.5, (n, 64)), 0, 16)
    now = datetime.now(UTC)
    lines = []
    for i in range(n):
        row = rows[i].astype(np.float32)
        sample = Sample(
            sample_id=f"{i:016x}",
            time=(now - timedelta(milliseconds=i)).isoformat(),
            client=f"client-{i % 7}",
            model=model,
            version="2",
            detector_score=0.6 if i % 4 == 0 else 0.05,
            extraction_score=0.1,
            prediction=0,
            confidence=0.9,
            flagged=i % 4 == 0,
            trace_id=f"{i:032x}",
            input_sha256=hashlib.sha256(row.tobytes()).hexdigest(),
            input=row.astype(float).tolist(),
        )
        lines.append(json.dumps(vars(sample), separators=(",", ":")))
    part = root / f"dt={now:%Y-%m-%d}"
    part.mkdir(parents=True, exist_ok=True)
    (part / "samples-bench.jsonl").write_text("\n".join(lines) + "\n")


async def _timed(cases: dict[str, Callable[[], Awaitable[Any]]], repeat: int) -> dict[str, float]:
    """Best time of each case, the cases interleaved (a noisy neighbour hits them alike), all
    inside one event loop as a caller of the service runs them."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, case in cases.items():
            start = time.perf_counter()
            await case()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


async def _sessions(settings: Settings, model: str) -> tuple[list[Any], dict[str, Any]]:
    registry = MlflowRegistry.connect(settings.mlflow.url, settings.mlflow.timeout_s)
    try:
        refs = await resolve_versions(registry, model, VERSIONS)
        sessions = {}
        for ref in refs:
            onnx = await registry.download_artifact(model, ref.version)
            check_sha256(model, ref.version, ref.sha256, onnx)
            sessions[ref.version] = make_plain_session(onnx)
    finally:
        await registry.aclose()
    return refs, sessions


def run(config: Path, samples: int = 10_000, repeat: int = 30) -> dict[str, Any]:
    base = load_settings(config)
    services.up(base, ["mlflow"])
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        return _measure(base, Path(tmp), samples, repeat)


def _measure(base: Settings, store: Path, samples: int, repeat: int) -> dict[str, Any]:
    model = base.lab.seed_model
    _write_store(store, model, samples)
    settings = base.model_copy(
        update={"samples": base.samples.model_copy(update={"path": str(store)})}
    )
    request = ReplayRequest(model=model, limit=samples, versions=VERSIONS)
    selected = read_selection(store, sample_filter(request, None))
    assert len(selected) == samples
    refs, sessions = asyncio.run(_sessions(settings, model))
    runner = LocalRunner(sessions)
    x = selected.x

    def engine(squeeze: bool) -> Callable[[], Awaitable[Any]]:
        squeezer = squeezer_of(settings) if squeeze else None

        async def loop() -> Any:
            outputs = Outputs(refs, len(x), squeezer)
            async for _ in run_batches(x, runner, outputs, LocalRunner.default_batch):
                pass
            return summarise(selected, outputs.runs(), settings.detectors.flag_threshold)

        return loop

    squeezed = squeezer_of(settings).batch(x)

    def direct(rows: np.ndarray) -> Callable[[], Awaitable[Any]]:
        outputs, feed = ["label", "probabilities"], {"input": rows}

        async def call() -> Any:
            return [session.run(outputs, feed) for session in sessions.values()]

        return call

    async def end_to_end() -> Any:
        return await replay_result(settings, request)

    t = asyncio.run(
        _timed(
            {
                "engine_squeeze": engine(True),
                "engine_no_squeeze": engine(False),
                "direct_inputs": direct(x),
                "direct_same_rows": direct(squeezed),
            },
            repeat,
        )
    )
    whole = asyncio.run(_timed({"replay": end_to_end}, max(2, repeat // 3)))["replay"]
    result = asyncio.run(replay_result(settings, request))
    return {
        "samples": samples,
        "versions": [r.label for r in refs],
        "replay_end_to_end_s": round(whole, 4),
        "replay_end_to_end_samples_per_s": round(samples / whole),
        **{f"{k}_ms": round(v * 1e3, 2) for k, v in t.items()},
        "engine_samples_per_s": round(samples / t["engine_squeeze"]),
        "engine_no_squeeze_samples_per_s": round(samples / t["engine_no_squeeze"]),
        "direct_inputs_samples_per_s": round(samples / t["direct_inputs"]),
        "ratio_engine_vs_direct_same_rows": round(t["direct_same_rows"] / t["engine_squeeze"], 3),
        "ratio_engine_no_squeeze_vs_direct_inputs": round(
            t["direct_inputs"] / t["engine_no_squeeze"], 3
        ),
        "ratio_engine_vs_direct_inputs": round(t["direct_inputs"] / t["engine_squeeze"], 3),
        "verdict": result.summary.verdict,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/lab.toml"))
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    sys.stdout.write(json.dumps(run(args.config, args.samples, args.repeat), indent=2) + "\n")


if __name__ == "__main__":
    main()
