"""The Clients view reads the bounded recordings (issue 14), and says when an answer is cut.

On a real VictoriaMetrics started here with ``-search.maxUniqueTimeseries`` set low, holding
series written through its import API (so each test chooses exactly which exist):
  * an engine with only the bounded recordings (no per-client series at all) still lists the
    clients, their reasons and the active count: the view reads nothing else;
  * an engine with per-client series but no bounded recordings (older rules) lists the same
    clients from every series, and says so;
  * a read over the series limit (the ``/`` search and the "more" page read the whole fleet)
    is a TRUNCATED badge in the TUI and a ``truncated:`` warning in ``get``, beside the rows the
    other reads gave; never an error that hides them.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from support import LabHandle, free_port, unavailable
from test_get import _settings, env, get, rows_of  # noqa: F401 - the env fixture
from textual.widgets import DataTable, Static
from tui.tui_support import until
from typer.testing import CliRunner

from console.adapters.backends import Backends
from console.cli.main import app
from console.config import Settings
from console.tui.app import ConsoleApp
from console.views.client_selection import LISTED, NOT_RECORDED

SERIES_LIMIT = 40
FLEET = 60
"""Per-client series in the fleet: more than the limit, so whole-fleet reads are refused."""


@contextmanager
def _victoria_metrics(data: Path, *flags: str) -> Iterator[str]:
    """A VictoriaMetrics of this module's own (free port, its own data dir), stopped on exit."""
    binary = shutil.which("victoria-metrics")
    if binary is None:
        unavailable("not installed: victoria-metrics")
    port = free_port()
    log = (data / "log").open("wb")
    argv = [binary, f"-storageDataPath={data / 'data'}", f"-httpListenAddr=127.0.0.1:{port}"]
    argv += ["-search.latencyOffset=0s", "-retentionPeriod=1d", *flags]
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                log_text = (data / "log").read_text()
                raise AssertionError(f"victoria-metrics did not start: {log_text}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture(scope="module")
def limited_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("vm-limited")
    with _victoria_metrics(data, f"-search.maxUniqueTimeseries={SERIES_LIMIT}") as url:
        yield url


@pytest.fixture(scope="module")
def open_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _victoria_metrics(tmp_path_factory.mktemp("vm-open")) as url:
        yield url


def _write(url: str, series: list[tuple[str, dict[str, str], float]]) -> None:
    """Samples at now, and at 30 s and 60 s ago, made searchable at once."""
    now = int(time.time() * 1000)
    lines = []
    for name, labels, value in series:
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines += [f"{name}{{{text}}} {value} {now - ago}" for ago in (0, 30_000, 60_000)]
    response = httpx.post(
        f"{url}/api/v1/import/prometheus", content="\n".join(lines) + "\n", trust_env=False
    )
    response.raise_for_status()
    httpx.get(f"{url}/internal/force_flush", timeout=5, trust_env=False).raise_for_status()


def _bounded(model: str, attacker: str, busy: list[str]) -> list[tuple[str, dict[str, str], float]]:
    """What the shipped bounded group records for a fleet: the listed clients' values (the
    busy ones by rate; the slow attacker by its score) and the active count."""
    out: list[tuple[str, dict[str, str], float]] = []
    for i, client in enumerate(busy):
        labels = {"model": model, "client": client}
        out += [(LISTED["rate"], labels, 50.0 - i), (LISTED["extraction"], labels, 0.02)]
        out.append((LISTED["refused"], labels, 0.0))
    labels = {"model": model, "client": attacker}
    out += [(LISTED["rate"], labels, 1.0), (LISTED["extraction"], labels, 0.9)]
    out.append(("aml:clients_active:count", {"model": model}, float(FLEET)))
    return out


def _engine_env(env: dict[str, str], url: str) -> dict[str, str]:  # noqa: F811
    return {**env, "CONSOLE_PROMETHEUS__URL": url}


def test_only_the_bounded_recordings_are_read(
    env: dict[str, str],  # noqa: F811 - the fixture imported above
    limited_vm: str,
    lab: LabHandle,
) -> None:
    tag = uuid.uuid4().hex[:8]
    model, attacker = f"bounded-{tag}", f"mallory-{tag}"
    busy = [f"b{i:02d}-{tag}" for i in range(5)]
    _write(limited_vm, _bounded(model, attacker, busy))
    result = get(_engine_env(env, limited_vm), "clients", "--model", model, "-o", "json")
    rows = rows_of(result)
    assert [r["client"] for r in rows][0] == attacker  # over the extraction threshold: first
    assert {r["client"] for r in rows} == {attacker, *busy}
    by_client = {r["client"]: r for r in rows}
    assert "top extraction" in by_client[attacker]["why"]
    assert by_client[busy[0]]["rate"] == 50.0 and "top rate" in by_client[busy[0]]["why"]
    assert NOT_RECORDED not in result.stderr and "truncated" not in result.stderr
    total = CliRunner().invoke(app, ["get", "clients"], env=_engine_env(env, limited_vm))
    assert total.exit_code == 0, total.stderr
    assert "active clients listed" in total.stdout + total.stderr


def test_without_the_bounded_recordings_every_series_is_read_and_said(
    env: dict[str, str],  # noqa: F811
    lab: LabHandle,
    tmp_path: Path,
) -> None:
    """An engine whose rules predate the bounded group: per-client recordings only (its own
    engine: another test's bounded series would make this one look recorded)."""
    with _victoria_metrics(tmp_path) as url:
        _older_rules(env, url)


def _older_rules(env: dict[str, str], url: str) -> None:  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    model, attacker = f"old-{tag}", f"mallory-{tag}"
    series = [
        ("aml:client_requests:rate1m", {"model": model, "client": f"c{i:02d}-{tag}"}, 30.0 - i)
        for i in range(25)
    ]
    series.append(("aml:client_requests:rate1m", {"model": model, "client": attacker}, 1.0))
    series.append(("aml_client_extraction_score", {"model": model, "client": attacker}, 0.9))
    _write(url, series)
    result = get(_engine_env(env, url), "clients", "--model", model, "-o", "json")
    rows = rows_of(result)
    assert rows[0]["client"] == attacker
    assert len(rows) == 21  # the 20 busiest and the attacker, by its score
    assert "aml-clients-bounded" in result.stderr  # the warning names what is missing


def test_reads_over_the_series_limit_are_truncated_not_fatal(
    env: dict[str, str],  # noqa: F811
    limited_vm: str,
    lab: LabHandle,
) -> None:
    tag = uuid.uuid4().hex[:8]
    model, attacker = f"limited-{tag}", f"mallory-{tag}"
    busy = [f"b{i:02d}-{tag}" for i in range(3)]
    fleet = [
        ("aml:client_requests:rate1m", {"model": model, "client": f"f{i:03d}-{tag}"}, 2.0)
        for i in range(FLEET)
    ]
    _write(limited_vm, _bounded(model, attacker, busy) + fleet)
    engine_env = _engine_env(env, limited_vm)
    # The search matches every fleet series, the page asks for the top 40 of all: both over.
    for extra in (["--search", tag], ["--more", "1"]):
        result = get(engine_env, "clients", "--model", model, *extra, "-o", "json")
        # Not an error: the listed clients are still there, and the cut is said.
        assert {r["client"] for r in rows_of(result)} == {attacker, *busy}
        assert "truncated:" in result.stderr and "series limit" in result.stderr
    listed = get(engine_env, "clients", "--model", model, "-o", "json")
    assert {r["client"] for r in rows_of(listed)} == {attacker, *busy}
    assert "truncated" not in listed.stderr
    asyncio.run(_badge_in_the_view(_settings(engine_env), tag))


async def _badge_in_the_view(settings: Settings, tag: str) -> None:
    app_ = ConsoleApp(settings, Backends(settings), start="clients", refresh_s=0.5)

    def count() -> str:
        return str(app_.screen.query_one("#clients-count", Static).render())

    async with app_.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: "listed ·" in count(), 30, "the count line")
        assert "TRUNCATED" not in count()
        await pilot.press("slash", *tag, "enter")  # matches 60 series: over the limit
        await until(pilot, lambda: "TRUNCATED" in count(), 15, "the truncation badge")
        assert "series limit" in count()


def _listed_values(
    model: str, client: str, rate: float, score: float, refused: float = 0.0
) -> list[tuple[str, dict[str, str], float]]:
    labels = {"model": model, "client": client}
    return [
        (LISTED["rate"], labels, rate),
        (LISTED["extraction"], labels, score),
        (LISTED["refused"], labels, refused),
        ("aml:client_requests:rate1m", labels, rate),
        ("aml_client_extraction_score", labels, score),
    ]


def test_decoys_filling_the_score_list_are_counted_and_the_next_page_lists_the_attacker(
    env: dict[str, str],  # noqa: F811
    open_vm: str,
    lab: LabHandle,
) -> None:
    """Twenty throwaway ids at score 1.0 fill the top list by extraction score; the slow
    attacker (0.5 req/s, 0.86) is in no top list. The view says how many clients are over the
    threshold and how many it lists, and the "more" page, by every column, lists it."""
    tag = uuid.uuid4().hex[:8]
    model, attacker = f"decoys-{tag}", f"mallory-{tag}"
    series = []
    for i in range(20):
        series += _listed_values(model, f"0decoy{i:02d}-{tag}", 0.0, 1.0)
    for i in range(3):  # a busy one's refused share is 0/0 (NaN) for an idle instant
        series += _listed_values(model, f"b{i}-{tag}", 40.0 - i, 0.05, math.nan if i else 0.0)
    labels = {"model": model, "client": attacker}
    series += [("aml:client_requests:rate1m", labels, 0.5)]
    series += [("aml_client_extraction_score", labels, 0.86)]
    series += [("aml:clients_extraction_over:count", {"model": model}, 21.0)]
    series += [("aml:clients_active:count", {"model": model}, 24.0)]
    _write(open_vm, series)
    engine_env = _engine_env(env, open_vm)
    first = get(engine_env, "clients", "--model", model, "-o", "json")
    assert attacker not in {r["client"] for r in rows_of(first)}
    assert f"{model}: 21 clients over the extraction threshold, 20 listed" in first.stderr
    paged = {
        r["client"]: r
        for r in rows_of(get(engine_env, "clients", "--model", model, "--more", "1", "-o", "json"))
    }
    assert "extraction #21" in paged[attacker]["why"]
    asked = rows_of(get(engine_env, "clients", "--client", attacker, "-o", "json"))
    assert [(r["client"], r["why"]) for r in asked] == [(attacker, "asked")]


def test_a_client_named_more_and_ids_of_128_characters_list_and_keep_the_view_up(
    env: dict[str, str],  # noqa: F811
    open_vm: str,
    lab: LabHandle,
) -> None:
    """Blocked clients without series: one named like the "more" row, 130 with the longest
    ids (their regex would be 17 KB, over VictoriaMetrics' query limit, in one piece)."""
    tag = uuid.uuid4().hex[:8]
    _write(open_vm, _bounded(f"keys-{tag}", f"mallory-{tag}", [f"b0-{tag}"]))
    long_ids = [f"{i:03d}" + "w" * 117 + tag for i in range(130)]
    settings = _settings(env)

    async def block() -> None:
        backends = Backends(settings)
        try:
            for client in ["more", *long_ids]:
                await backends.policy.block(client, timedelta(minutes=30), "t", "op", "run-1")
        finally:
            await backends.aclose()

    asyncio.run(block())
    result = get(_engine_env(env, open_vm), "clients", "-o", "json")
    rows = rows_of(result)
    blocked = {r["client"] for r in rows if r["why"] == "blocked"}
    assert {"more", *long_ids} <= blocked
    assert "not read" not in result.stderr
    asyncio.run(_more_and_sort(_settings(_engine_env(env, open_vm))))


async def _more_and_sort(settings: Settings) -> None:
    app_ = ConsoleApp(settings, Backends(settings), start="clients", refresh_s=0.5)

    def names() -> list[str]:
        table = app_.screen.query_one("#clients-table", DataTable)
        return [table.get_row_at(i)[1].plain for i in range(table.row_count)]

    async with app_.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: "more" in names(), 30, "the client named more listed")
        assert any(n.startswith("… more") for n in names())  # and the "more" row beside it
        await pilot.press("T")  # a sort redraws the table
        await pilot.pause(0.3)
        assert app_.is_running and "more" in names()


def test_client_reads_one_exact_id_and_search_says_how_many_it_left(
    env: dict[str, str],  # noqa: F811
    open_vm: str,
    lab: LabHandle,
) -> None:
    tag = uuid.uuid4().hex[:8]
    model, eve = f"search-{tag}", f"eve-{tag}"
    series = _bounded(model, f"mallory-{tag}", [f"b0-{tag}"])
    series.append(("aml:client_requests:rate1m", {"model": model, "client": eve}, 0.2))
    series += [
        ("aml:client_requests:rate1m", {"model": model, "client": f"Eve{i:03d}-{tag}"}, 0.3)
        for i in range(110)
    ]
    _write(open_vm, series)
    engine_env = _engine_env(env, open_vm)
    exact = rows_of(get(engine_env, "clients", "--client", eve, "-o", "json"))
    assert [(r["client"], r["why"]) for r in exact] == [(eve, "asked")]
    searched = get(engine_env, "clients", "--search", tag, "-o", "json")
    assert "truncated: search: " in searched.stderr and "matches" in searched.stderr
    refused = CliRunner().invoke(app, ["get", "clients", "--client", "not an id"], env=engine_env)
    assert refused.exit_code == 2 and "is not acceptable" in refused.stderr


def test_a_heatmap_over_the_series_limit_is_truncated_not_fatal(
    env: dict[str, str],  # noqa: F811
    lab: LabHandle,
    tmp_path: Path,
) -> None:
    with _victoria_metrics(tmp_path, f"-search.maxUniqueTimeseries={SERIES_LIMIT}") as url:
        tag = uuid.uuid4().hex[:8]
        model = f"heat-{tag}"
        series = _bounded(model, f"mallory-{tag}", [f"b0-{tag}"])
        series += [
            ("aml:client_requests:top_rate1m", {"model": model, "client": f"h{i:02d}-{tag}"}, 1.0)
            for i in range(SERIES_LIMIT + 10)
        ]
        _write(url, series)
        result = get(_engine_env(env, url), "clients", "--model", model, "-o", "json")
        assert {r["client"] for r in rows_of(result)} == {f"mallory-{tag}", f"b0-{tag}"}
        assert "truncated: heatmap: over the engine's series limit" in result.stderr
