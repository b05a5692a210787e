"""Replay's parts on their own: the verdict's branches on chosen arrays, what selection leaves
out, time options, cancelling a replay mid-way, and `--help` not loading the heavy libraries."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from replay_stack import Store
from replay_support import record, write_store
from support import REPO, LabHandle

from console.adapters.samples import SampleFilter
from console.cli.replay import parse_time
from console.config import load_settings
from console.errors import ReplayError
from console.replay.model import (
    NO_LABEL,
    BatchDone,
    ReplayFinished,
    ReplayRequest,
    ReplayStarted,
    SelectedSamples,
    VersionRef,
    VersionRun,
)
from console.replay.scoring import summarise
from console.replay.selection import read_selection
from console.replay.service import replay

CHAMPION = VersionRef("champion", "2", "a" * 64, ("champion",))
PREVIOUS = VersionRef("previous", "1", "b" * 64, ("previous",))
THIRD = VersionRef("3", "3", "c" * 64)


def _samples(flagged: list[bool], labels: list[int]) -> SelectedSamples:
    n = len(flagged)
    return SelectedSamples(
        records=[],
        x=np.zeros((n, 64), np.float32),
        adversarial=np.array(flagged),
        labels=np.array(labels, dtype=np.int64),
        filter=SampleFilter(model="digits"),
        truncated=False,
        skipped_lines=0,
        without_input=0,
        invalid_input=0,
    )


def _run(ref: VersionRef, labels: list[int], confidence: float = 0.9) -> VersionRun:
    n = len(labels)
    probabilities = np.full((n, 10), (1 - confidence) / 9, np.float32)
    probabilities[np.arange(n), labels] = confidence
    return VersionRun(
        ref,
        np.array(labels, dtype=np.int64),
        probabilities,
        probabilities.max(axis=1),
        np.zeros(n, np.float32),
    )


def _verdict(samples: SelectedSamples, *runs: VersionRun) -> str:
    return summarise(samples, list(runs), 0.5)[1].verdict


def test_previous_resists_what_fools_the_champion() -> None:
    # Ten labelled flagged inputs of class 3: the champion gets 8 wrong, previous 1 of those.
    samples = _samples([True] * 10 + [False] * 2, [3] * 12)
    champion = _run(CHAMPION, [5] * 8 + [3] * 4, 0.95)
    previous = _run(PREVIOUS, [3] * 7 + [5] + [3] * 4, 0.85)
    flips, summary = summarise(samples, [champion, previous], 0.5)
    assert flips.tolist() == [True] * 7 + [False] * 5
    assert summary.flip_rate_adversarial == pytest.approx(0.7)
    assert summary.flip_rate_other == 0.0
    assert summary.versions[1].confidence_shift == pytest.approx(-0.1, abs=1e-6)
    assert summary.versions[0].success_rate == pytest.approx(0.8)
    assert summary.verdict == (
        "previous (1) resists 88% (7 of 8) of the flagged inputs that fool champion (2) "
        "(adversarial success 10% vs 80%): rolling back to it would help"
    )


def test_the_best_of_several_versions_is_named() -> None:
    samples = _samples([True] * 4, [1] * 4)
    champion = _run(CHAMPION, [2, 2, 2, 2])
    previous = _run(PREVIOUS, [2, 2, 2, 1])
    third = _run(THIRD, [1, 1, 1, 2])
    assert _verdict(samples, champion, previous, third) == (
        "version 3 resists 75% (3 of 4) of the flagged inputs that fool champion (2) "
        "(adversarial success 25% vs 100%): switching to it would help"
    )
    assert _verdict(samples, champion, previous).endswith("rolling back to it would not help")


def test_without_labels_the_verdict_does_not_guess() -> None:
    samples = _samples([True] * 4 + [False] * 4, [NO_LABEL] * 8)
    verdict = _verdict(samples, _run(CHAMPION, [1] * 8), _run(PREVIOUS, [2, 2, 2, 1] + [1] * 4))
    assert verdict == (
        "75% of the 4 flagged inputs get another answer from previous (1) than from champion "
        "(2) (unflagged samples: 0% flip); they carry no true labels, so which version is "
        "right is unknown (most different: previous (1))"
    )


def test_nothing_flagged_and_nothing_fooled_and_one_version() -> None:
    clean = _samples([False] * 4, [NO_LABEL] * 4)
    assert _verdict(clean, _run(CHAMPION, [1, 1, 1, 1]), _run(PREVIOUS, [1, 1, 1, 2])) == (
        "none of the 4 samples is flagged as adversarial; the other versions change 25% of "
        "champion (2)'s predictions"
    )
    robust = _samples([True] * 2, [4, 4])
    assert _verdict(robust, _run(CHAMPION, [4, 4]), _run(PREVIOUS, [4, 1])).startswith(
        "champion (2) labels all 2 labelled flagged inputs correctly"
    )
    assert _verdict(robust, _run(CHAMPION, [4, 1])) == (
        "only champion (2) was replayed (2 of 2 samples flagged; adversarial success rate "
        "50%): name a second version to compare"
    )


def test_selection_leaves_out_hash_only_and_impossible_inputs(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    good = record(1, now, np.full(64, 3.0), model="m")
    hashed = {k: v for k, v in record(2, now, np.zeros(64), model="m").items() if k != "input"}
    bright = record(3, now, np.full(64, 17.0), model="m")
    write_store(tmp_path, [good, hashed, bright])
    selected = read_selection(tmp_path, SampleFilter(model="m"))
    assert [r.sample_id for r in selected.records] == [good["sample_id"]]
    assert selected.without_input == 1 and selected.invalid_input == 1
    assert selected.x.shape == (1, 64) and selected.labels.tolist() == [NO_LABEL]
    write_store(tmp_path / "hashes", [hashed])
    with pytest.raises(ReplayError, match="1 samples matched .* none can be replayed: 1 kept"):
        read_selection(tmp_path / "hashes", SampleFilter(model="m"))


def test_time_options() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert parse_time("15m", now, "--since") == now - timedelta(minutes=15)
    assert parse_time("1h30m", now, "--since") == now - timedelta(minutes=90)
    assert parse_time("2026-01-05T10:00:00Z", now, "--since") == now - timedelta(hours=2)
    assert parse_time(None, now, "--since") is None
    with pytest.raises(ReplayError, match="neither a duration"):
        parse_time("soon", now, "--until")


async def test_stopping_the_stream_stops_the_replay(
    lab: LabHandle, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSOLE_CONFIG", str(lab.config_path))
    monkeypatch.setenv("CONSOLE_SAMPLES__PATH", str(store.root))
    settings = load_settings()
    request = ReplayRequest(model=store.model, batch_size=10)
    seen: list[Any] = []
    events = replay(settings, request)
    async for event in events:
        seen.append(event)
        if isinstance(event, BatchDone):
            break
    await events.aclose()
    assert isinstance(seen[0], ReplayStarted) and seen[-1] == BatchDone(10, len(store.records))

    # Cancelling the task that consumes it ends it too, between batches.
    progress: list[int] = []

    async def consume() -> None:
        async for event in replay(settings, request):
            if isinstance(event, BatchDone):
                progress.append(event.done)
                await asyncio.sleep(10)
            assert not isinstance(event, ReplayFinished)

    task = asyncio.create_task(consume())
    while not progress:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert progress == [10]


def test_help_loads_no_heavy_library() -> None:
    code = (
        "import sys, console.cli.main\n"
        "heavy = [m for m in ('numpy', 'onnxruntime', 'pandas', 'pyarrow', 'console.replay',"
        " 'textual') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    got = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert got.stdout.strip() == ""
