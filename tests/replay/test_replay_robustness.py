"""Replay's verdict quotes each version's recorded robustness (``aml.robustness.*`` on the real
registry version, judged against ``[robustness]``): in ``aml-console replay`` (JSON and table)
and on the TUI's replay screen."""

from __future__ import annotations

import asyncio
from typing import Any

from fleet_support import put_record, record, settings_of
from replay_stack import Store
from replay_support import invoke
from support import LabHandle
from textual.widgets import Static

from console.adapters.backends import Backends
from console.lab.seed import SeededModel
from console.tui.app import ConsoleApp
from console.tui.screens.replay import ReplayScreen

QUOTE = (
    "; recorded robustness: champion (2): clean 0.95, adversarial success 0.42, detector FPR "
    "0.03, passes the gate; previous (1): clean 0.81, adversarial success 0.42, detector FPR "
    "0.03, misses the gate (clean_accuracy 0.810 is below the gate's 0.900)"
)


def _tag(env: dict[str, str], model: SeededModel) -> None:
    settings = settings_of(env)
    put_record(settings, model, record(model, "2"))
    put_record(settings, model, record(model, "1", clean=0.81))


def test_the_verdict_quotes_each_versions_recorded_robustness(
    env: dict[str, str], store: Store, replay_model: SeededModel
) -> None:
    _tag(env, replay_model)
    args = ["replay", "--model", store.model, "--client", "mallory-2"]
    doc = invoke([*args, "-o", "json"], env).json()
    assert doc["verdict"].endswith(QUOTE), doc["verdict"]
    assert doc["verdict"].startswith("previous (1) resists")  # the replay's own line first
    table = invoke(args, env)
    assert table.exit_code == 0, table.stderr
    last = " ".join(table.stdout.strip().splitlines()[-1].split())
    assert last.endswith(" ".join(QUOTE.split())), table.stdout

    # A record copied from another version is no evaluation of this one.
    copied = record(replay_model, "1", sha256=replay_model.sha256["2"])
    put_record(settings_of(env), replay_model, copied)
    doc = invoke([*args, "-o", "json"], env).json()
    assert "previous (1): measured another artifact (sha256 " in doc["verdict"]


async def test_the_tui_replay_screen_shows_the_quote(
    lab: LabHandle, env: dict[str, str], store: Store, replay_model: SeededModel
) -> None:
    await asyncio.to_thread(_tag, env, replay_model)
    settings = settings_of(env)
    app = ConsoleApp(settings, Backends(settings), start="runbooks", refresh_s=0.5)
    async with app.run_test(size=(200, 45)) as pilot:
        app.open_replay("mallory-2", store.model)
        for _ in range(600):  # until the replay is done (or failed), at most a minute
            replay: Any = app.screen
            if isinstance(replay, ReplayScreen) and (replay.result or replay.error):
                break
            await pilot.pause(0.1)
        assert isinstance(replay, ReplayScreen)
        assert replay.error is None, replay.error
        shown = " ".join(str(replay.query_one("#replay-verdict", Static).render()).split())
        assert "recorded robustness: champion (2): clean 0.95" in shown
        assert "previous (1): clean 0.81" in shown and "misses the gate" in shown
