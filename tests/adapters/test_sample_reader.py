"""The sample-store reader: against the real gateway's files, and on files written by the
gateway's own SampleStore with chosen times, torn lines and garbage."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from readers_support import T0, GatewayRun, sample, unopenable, write_samples

from console.adapters.samples import SampleFilter, find_sample, read_samples
from console.errors import AdapterError, ConfigError, ConsoleError

# Against the real gateway ------------------------------------------------------------------


def test_every_served_row_reads_back_with_its_provenance(gateway_run: GatewayRun) -> None:
    batch = read_samples(gateway_run.samples_dir, SampleFilter())
    assert batch.skipped_lines == 0 and not batch.truncated and batch.files_read == 1
    by_trace: dict[str, list[list[float]]] = {}
    for record in batch.records:
        by_trace.setdefault(record.trace_id, []).append(list(record.input or ()))
    sent = {s.trace_id: s for s in gateway_run.ok()}
    assert set(by_trace) == set(sent)
    for trace_id, inputs in by_trace.items():
        assert sorted(inputs) == sorted(sent[trace_id].rows)
    for record in batch.records:
        assert record.client == sent[record.trace_id].client
        assert record.model == gateway_run.model
        assert record.version == gateway_run.version
        assert record.time.tzinfo is not None and record.time.utcoffset() == timedelta(0)
        assert record.input is not None
        row = np.asarray(record.input, dtype=np.float32)
        assert record.input_sha256 == hashlib.sha256(row.tobytes()).hexdigest()
        assert 0 <= record.prediction <= 9 and 0 < record.confidence <= 1
    times = [r.time for r in batch.records]
    assert times == sorted(times, reverse=True)


def test_filters_and_lookup_on_the_real_store(gateway_run: GatewayRun) -> None:
    bob = read_samples(gateway_run.samples_dir, SampleFilter(client="bob"))
    assert {r.trace_id for r in bob.records} == {
        s.trace_id for s in gateway_run.ok() if s.client == "bob"
    }
    assert read_samples(gateway_run.samples_dir, SampleFilter(model="other")).records == []
    two_rows = next(s for s in gateway_run.ok() if len(s.rows) == 2)
    by_trace = read_samples(
        gateway_run.samples_dir, SampleFilter(trace_ids=frozenset({two_rows.trace_id.upper()}))
    )
    assert len(by_trace.records) == 2
    newest = read_samples(gateway_run.samples_dir, SampleFilter(limit=2))
    assert len(newest.records) == 2 and newest.truncated
    for record in by_trace.records:
        found = find_sample(gateway_run.samples_dir, record.sample_id)
        assert found == record
    assert find_sample(gateway_run.samples_dir, "0" * 16) is None


# Synthetic files, written by the gateway's SampleStore ---------------------------------------


def _partition(root: Path, day: str) -> Path:
    return root / f"dt={day}"


def test_torn_and_garbage_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    write_samples(tmp_path, [sample(i, T0 + timedelta(seconds=i)) for i in range(3)])
    (file,) = _partition(tmp_path, "2026-01-05").iterdir()
    good = file.read_text().splitlines()[0]
    garbage = [
        "not json",
        "[1, 2]",
        '{"sample_id": 1}',
        good.replace("+00:00", ""),  # naive time
        good.replace('"input":[', '"input":[1.0,'),  # 65 values
        good.replace('"flagged":false', '"flagged":"no"'),
        "",  # blank: not a record, not counted
    ]
    with file.open("a") as handle:
        handle.write("\n".join(garbage) + "\n")
        handle.write(good[: len(good) // 2])  # a torn last line, as a crash leaves it
    batch = read_samples(tmp_path, SampleFilter())
    assert [r.sample_id for r in batch.records] == [f"{i:016x}" for i in (2, 1, 0)]
    assert batch.skipped_lines == 7
    assert batch.files_read == 1


def test_only_dt_date_directories_are_read(tmp_path: Path) -> None:
    write_samples(tmp_path, [sample(1, T0)])
    real = next(_partition(tmp_path, "2026-01-05").iterdir())
    for name in ("dt=not-a-date", "dt=20260104", "dt=2026-13-01", "other", "2026-01-04"):
        (tmp_path / name).mkdir()
        (tmp_path / name / real.name).write_text(real.read_text())
    (tmp_path / "dt=2026-01-03").write_text(real.read_text())  # a file, not a directory
    (_partition(tmp_path, "2026-01-05") / "notes.txt").write_text("not a sample file\n")
    batch = read_samples(tmp_path, SampleFilter())
    assert [r.sample_id for r in batch.records] == [f"{1:016x}"]
    assert batch.files_read == 1 and batch.skipped_lines == 0


def _trapped_days(root: Path) -> None:
    """Partitions 2026-01-01..07, one sample each at noon; 01 and 07 cannot be opened."""
    write_samples(root, [sample(d, datetime(2026, 1, d, 12, tzinfo=UTC)) for d in range(2, 7)])
    for day in ("2026-01-01", "2026-01-07"):
        unopenable(_partition(root, day) / "samples-1.jsonl")
        os.chmod(_partition(root, day), 0)  # also denies non-root users the listing


@pytest.fixture
def trapped(tmp_path: Path) -> Iterator[Path]:
    _trapped_days(tmp_path)
    yield tmp_path
    for day in ("2026-01-01", "2026-01-07"):
        os.chmod(_partition(tmp_path, day), 0o755)


def test_partitions_outside_the_window_are_not_opened(trapped: Path) -> None:
    window = SampleFilter(
        since=datetime(2026, 1, 2, 23, 0, tzinfo=UTC),
        until=datetime(2026, 1, 7, tzinfo=UTC),  # exclusive: 01-07 cannot hold a match
    )
    batch = read_samples(trapped, window)
    assert [r.time.day for r in batch.records] == [6, 5, 4, 3]
    assert batch.files_read == 5  # 02..06: 02 overlaps the window, its sample is before it


def test_a_partition_inside_the_window_that_cannot_be_read_is_an_error(trapped: Path) -> None:
    with pytest.raises(AdapterError, match="sample store: cannot"):
        read_samples(trapped, SampleFilter(since=datetime(2026, 1, 2, tzinfo=UTC)))


def test_reading_stops_once_the_newest_matches_are_known(trapped: Path) -> None:
    # 01-07 is trapped but outside the window; 01-01 is inside it, and never reached.
    write_samples(
        trapped, [sample(100 + i, datetime(2026, 1, 6, 13, i, tzinfo=UTC)) for i in range(3)]
    )
    batch = read_samples(trapped, SampleFilter(until=datetime(2026, 1, 7, tzinfo=UTC), limit=3))
    assert [r.sample_id for r in batch.records] == [f"{n:016x}" for n in (102, 101, 100)]
    assert batch.truncated and batch.files_read == 1


def test_limit_truncation_and_newest_first_across_interleaved_files(tmp_path: Path) -> None:
    day = _partition(tmp_path, "2026-01-05")
    write_samples(tmp_path, [sample(i, T0 + timedelta(minutes=i)) for i in range(0, 10, 2)])
    (only,) = day.iterdir()
    only.rename(day / "samples-1.jsonl")  # another gateway process's file
    write_samples(tmp_path, [sample(i, T0 + timedelta(minutes=i)) for i in range(1, 10, 2)])
    write_samples(tmp_path, [sample(20, T0 - timedelta(days=1))])
    everything = read_samples(tmp_path, SampleFilter())
    assert [r.sample_id for r in everything.records] == [
        f"{i:016x}" for i in (*range(9, -1, -1), 20)
    ]
    assert not everything.truncated and everything.files_read == 3
    four = read_samples(tmp_path, SampleFilter(limit=4))
    assert [r.sample_id for r in four.records] == [f"{i:016x}" for i in (9, 8, 7, 6)]
    assert four.truncated and four.files_read == 2
    exact = read_samples(tmp_path, SampleFilter(limit=11))
    assert len(exact.records) == 11 and not exact.truncated


def test_hash_only_records_have_no_input(tmp_path: Path) -> None:
    write_samples(tmp_path, [sample(3, T0)], hash_only=True)
    (record,) = read_samples(tmp_path, SampleFilter()).records
    assert record.input is None and record.input_sha256 == "ab" * 32
    assert find_sample(tmp_path, record.sample_id) == record


def test_filter_combinations(tmp_path: Path) -> None:
    write_samples(
        tmp_path,
        [
            sample(1, T0, client="alice", score=0.9, flagged=True),
            sample(2, T0 + timedelta(seconds=1), client="alice", score=0.2),
            sample(3, T0 + timedelta(seconds=2), client="bob", score=0.7, flagged=True),
            sample(4, T0 + timedelta(seconds=3), client="bob", model="other", score=0.95),
            sample(5, T0 + timedelta(seconds=4), client="alice", score=0.6, flagged=True),
        ],
    )

    def ids(**kw: object) -> list[int]:
        batch = read_samples(tmp_path, SampleFilter(**kw))
        return [int(r.sample_id, 16) for r in batch.records]

    assert ids(client="alice") == [5, 2, 1]
    assert ids(client="alice", flagged_only=True) == [5, 1]
    assert ids(min_score=0.7) == [4, 3, 1]
    assert ids(min_score=0.7, model="digits") == [3, 1]
    assert ids(client="bob", model="other") == [4]
    assert ids(trace_ids=frozenset({f"{2:032x}", f"{3:032x}"})) == [3, 2]
    assert ids(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3)) == [3, 2]
    assert ids(since=T0 + timedelta(seconds=4)) == [5]  # since is inclusive
    assert ids(until=T0) == []  # until is exclusive
    assert ids(client="alice", min_score=0.5, since=T0 + timedelta(seconds=1)) == [5]
    assert ids(client="nobody") == []


def test_store_location_problems(tmp_path: Path) -> None:
    missing = read_samples(tmp_path / "absent", SampleFilter())
    assert (missing.records, missing.files_read, missing.truncated) == ([], 0, False)
    a_file = tmp_path / "samples.jsonl"
    a_file.write_text("{}\n")
    with pytest.raises(ConfigError, match="is not a directory"):
        read_samples(a_file, SampleFilter())
    with pytest.raises(ConfigError, match="is not a directory"):
        find_sample(a_file, "x")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"limit": 0}, "limit must be between 1 and 10000"),
        ({"limit": 10_001}, "limit must be between 1 and 10000"),
        ({"since": datetime(2026, 1, 1)}, "since must be a timezone-aware"),  # noqa: DTZ001
        ({"since": T0, "until": T0 - timedelta(seconds=1)}, "is after until"),
    ],
)
def test_filter_validation(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConsoleError, match=message):
        SampleFilter(**kw)


def test_find_sample_skips_garbage_and_misses(tmp_path: Path) -> None:
    write_samples(tmp_path, [sample(7, T0), sample(8, T0 - timedelta(days=2))])
    (_partition(tmp_path, "2026-01-05") / "samples-9.jsonl").write_text(
        f'{{"sample_id": "{8:016x}", "torn\n'
    )
    found = find_sample(tmp_path, f"{8:016x}")
    assert found is not None and found.time == T0 - timedelta(days=2)
    assert found.input == (8.0,) * 64
    assert find_sample(tmp_path, "nope") is None
