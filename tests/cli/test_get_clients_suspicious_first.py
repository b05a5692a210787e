"""Suspicious first (issue 14): ``get clients`` and the Clients view list the union of the top-K
per model by rate, extraction score, flagged rate and refused share, plus every client with a
firing alert, a block, a budget or hardening, each with why it is listed. On the real session
lab: clients scraped by the real Prometheus through the shipped rules, blocks in the real Redis
policy store, an alert in the real Alertmanager."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from metrics_support import Client, Traffic, exporter_registered, wait_for_result
from support import LabHandle
from test_get import _settings, env, get, rows_of  # noqa: F401 - the env fixture
from textual.widgets import DataTable, Static
from tui.tui_support import until

from console.adapters.backends import Backends
from console.config import Settings
from console.tui.app import ConsoleApp
from console.views.client_selection import (
    NOT_RECORDED,
    TOP_PER_CRITERION,
    client_regex,
    search_regex,
)
from console.views.clients import fetch_clients

BENIGN = 45


def _traffic(tag: str) -> tuple[Traffic, list[str]]:
    """45 benign clients, busiest first (50 .. 6 req/s), the quieter ones scoring a little
    higher; a slow attacker (1 req/s, score 0.9) behind all of them; an evader (0.5 req/s, every
    row flagged); a client whose id differs from a blocked one by the character a regex ``.``
    would match."""
    benign = [f"fb{i:02d}-{tag}" for i in range(BENIGN)]
    clients = [
        Client(name, rps=50.0 - i, extraction_score=round(0.01 + 0.001 * i, 3))
        for i, name in enumerate(benign)
    ]
    clients += [
        Client(f"mallory-{tag}", rps=1.0, extraction_score=0.9),
        Client(f"eve-{tag}", rps=0.5, extraction_score=0.0, flagged=1.0),
        Client(f"quietXdot-{tag}", rps=5.5, extraction_score=0.0),
    ]
    return Traffic(clients=tuple(clients), model=f"fleet-{tag}"), benign


def _alert(client: str, model: str, name: str, hours: float) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": "warning", "client": client, "model": model},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=hours)).isoformat(),
    }


def test_the_slow_attacker_is_first_and_every_row_says_why(
    env: dict[str, str],  # noqa: F811 - the fixture imported above
    lab_prometheus: LabHandle,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    traffic, benign = _traffic(tag)
    model = traffic.model
    attacker, evader = f"mallory-{tag}", f"eve-{tag}"
    blocked_quiet, alerted = f"quiet.dot-{tag}", f"fb{BENIGN - 23:02d}-{tag}"
    # fb22 is 23rd by rate and 22nd by score: in no top list, only its alert lists it.

    async def block() -> None:
        backends = Backends(_settings(env))
        try:
            await backends.policy.block(blocked_quiet, timedelta(minutes=30), "t", "op", "run-1")
        finally:
            await backends.aclose()

    asyncio.run(block())
    am = lab_prometheus.settings.alertmanager.url
    alert_name = f"FleetTest{tag}"
    httpx.post(
        f"{am}/api/v2/alerts", json=[_alert(alerted, model, alert_name, 1)], trust_env=False
    ).raise_for_status()
    try:
        with exporter_registered(lab_prometheus, traffic, name=f"fleet-{tag}"):
            wait_for_result(
                lab_prometheus.settings.prometheus.url,
                f'count(aml:client_requests:rate1m{{model="{model}"}}) == {len(traffic.clients)}',
                90,
            )
            # ... and the bounded group has listed them (its count is of the same evaluation).
            wait_for_result(
                lab_prometheus.settings.prometheus.url,
                f'aml:clients_active:count{{model="{model}"}} == {len(traffic.clients)}',
                30,
            )
            rows = rows_of(get(env, "clients", "--model", model, "-o", "json"))
            listed = [r["client"] for r in rows]
            assert listed[0] == alerted  # a firing alert first, then ...
            assert listed[1] == attacker  # ... the attacker over the extraction threshold
            by_client = {r["client"]: r for r in rows}
            assert "top extraction" in by_client[attacker]["why"]
            assert "top rate" not in by_client[attacker]["why"]
            assert by_client[alerted]["why"].startswith(f"alert {alert_name}")
            assert by_client[alerted]["alerts"] == [alert_name]
            assert "top flagged" in by_client[evader]["why"]
            # The 20 busiest and the 20 highest scores are listed; clients 20-24 are in neither.
            top_rate = set(benign[:TOP_PER_CRITERION])
            top_score = set(benign[-(TOP_PER_CRITERION - 1) :])  # the attacker holds one place
            assert top_rate | top_score <= set(listed)
            hidden = set(benign) - top_rate - top_score - {alerted}
            assert hidden and not hidden & set(listed)
            # A blocked client with no traffic is listed; the regex for its id did not match
            # the id that differs from it where a regex "." would match.
            assert blocked_quiet not in by_client  # no model: not shown under --model ...
            everyone = {r["client"]: r for r in rows_of(get(env, "clients", "-o", "json"))}
            assert everyone[blocked_quiet]["why"] == "blocked"
            assert everyone[blocked_quiet]["rate"] == 0
            assert f"quietXdot-{tag}" not in everyone

            async def snapshots() -> tuple[Any, Any, Any]:
                backends = Backends(_settings(env))
                try:
                    return (
                        await fetch_clients(backends),
                        await fetch_clients(backends, more=1),
                        await fetch_clients(backends, search=f"Xdot-{tag}"),
                    )
                finally:
                    await backends.aclose()

            first, paged, searched = asyncio.run(snapshots())
            assert first.active is not None and first.active >= len(traffic.clients)
            assert NOT_RECORDED not in first.warnings  # read from the bounded recordings
            assert first.more_available
            ours = {r.client: r for r in paged.rows if r.model == model}
            assert hidden <= set(ours)  # the "more" page lists the next K by rate
            assert any(w.startswith("rate #") for r in ours.values() for w in r.reasons)
            found = [r for r in searched.rows if r.client == f"quietXdot-{tag}"]
            assert [r.reasons for r in found] == [("search",)]

            asyncio.run(_drive_the_view(_settings(env), tag, alerted, attacker, benign))
    finally:
        httpx.post(
            f"{am}/api/v2/alerts", json=[_alert(alerted, model, alert_name, -1)], trust_env=False
        )


async def _drive_the_view(
    settings: Settings, tag: str, alerted: str, attacker: str, benign: list[str]
) -> None:
    """The same fleet in the TUI, driven as a user would: suspicious first, a sort key, the
    "more" row, and ``/`` finding a client no list holds."""
    app = ConsoleApp(settings, Backends(settings), start="clients", refresh_s=0.5)

    def names() -> list[str]:
        table = app.screen.query_one("#clients-table", DataTable)
        return [table.get_row_at(i)[1].plain for i in range(table.row_count)]

    def ours() -> list[str]:
        return [n for n in names() if n.endswith(tag) or n.startswith("…")]

    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: attacker in names(), 30, "the attacker listed")
        assert ours()[:2] == [alerted, attacker]
        count = str(app.screen.query_one("#clients-count", Static).render())
        assert "listed ·" in count and "active clients" in count
        await pilot.press("T")  # sort by req/s
        await until(pilot, lambda: ours()[0] == benign[0], 5, "sorted by rate")
        hidden = benign[TOP_PER_CRITERION + 1]  # 22nd by rate, in no top list
        assert hidden not in names()
        assert names()[-1].startswith("… more")
        table = app.screen.query_one("#clients-table", DataTable)
        table.focus()
        table.move_cursor(row=table.row_count - 1)
        await pilot.press("enter")  # the "more" row: the next K by rate
        await until(pilot, lambda: hidden in names(), 15, "the next page listed")
        await pilot.press("slash")
        await pilot.press(*f"Xdot-{tag}", "enter")
        await until(pilot, lambda: f"quietXdot-{tag}" in names(), 15, "the fleet searched")


@pytest.mark.parametrize(
    ("ids", "regex", "malformed"),
    [
        (["a.b", "c"], "a\\\\.b|c", []),
        (["x|.*", "ok"], "ok", ["x|.*"]),
        (['q"} or vector(1)', "a"], "a", ['q"} or vector(1)']),
    ],
)
def test_watched_ids_become_an_exact_regex_and_hostile_ones_are_left_out(
    ids: list[str], regex: str, malformed: list[str]
) -> None:
    assert client_regex(ids) == (regex, malformed)


def test_a_search_that_cannot_be_part_of_an_id_asks_nothing_of_the_engine() -> None:
    assert search_regex('"} or vector(1) #') is None
    assert search_regex(".*") is None
    assert search_regex("mal.lory") == "(?i).*mal\\\\.lory.*"
