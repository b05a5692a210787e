"""The Mitigations view shows shadow budgets apart from enforced ones, with what they would have
refused: the budgets set with the real runbook, the traffic counted by the real decisions in
the session lab's Redis, the view driven with Textual's Pilot."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import redis
from support import REPO, run_cli
from tui_support import cells, make_app, until

from console.adapters.policy_decisions import PolicyDecider
from console.config import load_settings
from console.tui.screens.runbook import RunbookScreen


def _env(lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    run_dir = tmp_path / "run"
    env = {
        "CONSOLE_CONFIG": str(lab.config_path),
        "CONSOLE_RUN_DIR": str(run_dir),
        "CONSOLE_REDIS__KEY_PREFIX": f"tsb{secrets.token_hex(4)}",
        "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": "tui-shadow-audit-key-" + "x" * 16,
        "CONSOLE_OPERATOR": "tui-tester",
        "CONSOLE_RUNBOOK_DIRS": json.dumps([str(REPO / "runbooks")]),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


def _runbook(env: dict[str, str], *params: str) -> None:
    args = ["runbook", "run", "lower-query-budget"]
    for param in params:
        args += ["-p", param]
    result = run_cli([*args, "--yes"], env)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_mitigations_shows_the_share_a_shadow_budget_would_have_refused(
    lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(lab, tmp_path, monkeypatch)
    settings = load_settings()
    prefix = settings.redis.key_prefix
    _runbook(env, "client=bob", "qpm=5", "mode=shadow")
    _runbook(env, "client=alice", "qpm=50")
    clock_start = 1_950_000_000.0 + secrets.randbelow(10_000) * 60
    decider = PolicyDecider(
        settings.redis,
        prefix,
        cache_s=3600.0,
        failure_mode="open",
        default_qpm=None,
        clock=lambda: clock_start,
    )
    try:
        verdicts = [(await decider.decide("bob")).verdict for _ in range(12)]
    finally:
        await decider.aclose()
    assert verdicts == ["allow"] * 12
    admin = redis.Redis.from_url(lab.settings.redis.url, decode_responses=True)
    app = make_app(settings, start="mitigations")
    try:
        async with app.run_test(size=(200, 40)) as pilot:
            await until(pilot, lambda: bool(cells(app, "#shadow-table")), 15, "shadow budgets")
            shadows = cells(app, "#shadow-table")
            assert [r[0] for r in shadows] == ["bob"]
            line = shadows[0][1]
            assert line.startswith(
                "shadow 5/min: would have refused 58% of bob's traffic (7 of 12 since "
            ), line
            assert shadows[0][2] == "default"  # what stays enforced meanwhile
            # Enforced budgets are listed apart: alice's, not bob's.
            assert [r[0] for r in cells(app, "#budgets-table")] == ["alice"]

            app.screen.query_one("#shadow-table").focus()
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 10, "dialog")
            dialog = app.screen
            assert isinstance(dialog, RunbookScreen)
            assert dialog.loaded.runbook.name == "restore-query-budget"
            assert dialog.query_one("#param-client").value == "bob"  # type: ignore[attr-defined]
    finally:
        admin.delete(*admin.keys(f"{prefix}:*") or ["-"])
        admin.close()
