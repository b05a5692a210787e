"""The Mitigations view lists output hardenings (client, what its answers keep, expiry) set with
the real ``harden-outputs`` runbook; ``h`` on one opens ``unharden-outputs`` for that client.
Driven with Textual's Pilot against the session lab's Redis."""

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

from console.config import load_settings
from console.tui.screens.runbook import RunbookScreen


def _env(lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    run_dir = tmp_path / "run"
    env = {
        "CONSOLE_CONFIG": str(lab.config_path),
        "CONSOLE_RUN_DIR": str(run_dir),
        "CONSOLE_REDIS__KEY_PREFIX": f"thd{secrets.token_hex(4)}",
        "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": "tui-hardening-audit-key-" + "x" * 16,
        "CONSOLE_OPERATOR": "tui-tester",
        "CONSOLE_RUNBOOK_DIRS": json.dumps([str(REPO / "runbooks")]),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


async def test_mitigations_lists_a_hardening_and_h_opens_unharden(
    lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(lab, tmp_path, monkeypatch)
    settings = load_settings()
    prefix = settings.redis.key_prefix
    for params in (["client=bob", "mode=label-only"], ["client=dan", "mode=rounded"]):
        args = ["runbook", "run", "harden-outputs", "-p", "ttl=2h", "--yes"]
        for param in params:
            args += ["-p", param]
        result = run_cli(args, env)
        assert result.returncode == 0, result.stdout + result.stderr
    admin = redis.Redis.from_url(lab.settings.redis.url, decode_responses=True)
    app = make_app(settings, start="mitigations")
    try:
        async with app.run_test(size=(200, 50)) as pilot:
            await until(pilot, lambda: bool(cells(app, "#hardenings-table")), 15, "hardenings")
            rows = {r[0]: r for r in cells(app, "#hardenings-table")}
            assert set(rows) == {"bob", "dan"}
            assert rows["bob"][1] == "label-only"
            assert rows["dan"][1] == "rounded to 2 decimals"
            assert rows["bob"][2] in ("1.9h", "2.0h"), rows["bob"][2]
            assert rows["bob"][3] == "tui-tester"

            table = app.screen.query_one("#hardenings-table")
            table.focus()
            await pilot.press("h")
            await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 10, "dialog")
            dialog = app.screen
            assert isinstance(dialog, RunbookScreen)
            assert dialog.loaded.runbook.name == "unharden-outputs"
            # Soonest expiry first: bob's, hardened first, is the selected row.
            assert dialog.query_one("#param-client").value == "bob"  # type: ignore[attr-defined]
    finally:
        admin.delete(*admin.keys(f"{prefix}:*") or ["-"])
        admin.close()
