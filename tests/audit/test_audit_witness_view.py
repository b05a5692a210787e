"""The Audit view checks the witness too: a log rolled back with its checkpoint, or deleted
with it, shows as tampered on screen, as `audit verify` reports it."""

from __future__ import annotations

import shutil
from pathlib import Path

from audit_helpers import KEY, event
from textual.widgets import Static

from console.adapters.backends import Backends
from console.audit import AuditLog
from console.config import load_settings
from console.tui.app import ConsoleApp


def _verify_line(app: ConsoleApp) -> str:
    return str(app.screen.query_one("#verify", Static).render())


async def _shown(config: Path) -> str:
    settings = load_settings(config)
    app = ConsoleApp(settings, Backends(settings), start="audit", refresh_s=0.5)
    async with app.run_test(size=(150, 40)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if _verify_line(app).strip():
                break
        return _verify_line(app)


async def test_the_audit_view_shows_a_rollback_and_a_deleted_log(tmp_path: Path) -> None:
    config = tmp_path / "console.toml"
    config.write_text(
        f'run_dir = "{tmp_path / "run"}"\n[audit]\nhmac_key = "{KEY.decode()}"\n',
        encoding="utf-8",
    )
    log = AuditLog.from_settings(load_settings(config))
    for i in range(4):
        log.append(event("step-intent", "r", step=f"s{i}"))
    assert "verified: 4 records" in await _shown(config)

    saved = tmp_path / "saved"
    saved.mkdir()
    shutil.copy2(log.path, saved / "log")
    shutil.copy2(log.checkpoint_path, saved / "checkpoint")
    for i in range(4):
        log.append(event("step-intent", "later", step=f"s{i}"))
    shutil.copy2(saved / "log", log.path)
    shutil.copy2(saved / "checkpoint", log.checkpoint_path)
    shown = await _shown(config)
    assert "TAMPERED" in shown and "behind its witness: 4 records, witness has 8" in shown

    log.path.unlink()
    log.checkpoint_path.unlink()
    shown = await _shown(config)
    assert "TAMPERED" in shown and "log missing but witness records 8 records" in shown
