"""``aml-console demo``: the newcomer's one command. The lab comes up (or is reused), benign
traffic runs, a scripted extraction attack starts a minute later, and the console opens on
Alerts with a hint of what to try. Quitting leaves the lab running and says how to stop it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from console.cli.common import context, errors_as_exit
from console.cli.common import stdout as out
from console.cli.tui import require_terminal

if TYPE_CHECKING:
    from console.config import Settings

ATTACKER = "mallory"
"""The demo's attacker is ``mallory-N``: the first one the policy store holds nothing against,
so a second demo (its state kept per user) is not met by the first one's block."""
MAX_ATTACKERS = 50


def free_attacker(settings: Settings) -> str:
    import asyncio

    from console.adapters.backends import Backends

    async def first_free() -> str:
        backends = Backends(settings)
        try:
            store = backends.policy
            for n in range(1, MAX_ATTACKERS + 1):
                client = f"{ATTACKER}-{n}"
                held = (
                    await store.get_block(client),
                    await store.get_budget(client),
                    await store.get_hardening(client),
                )
                if held == (None, None, None):
                    return client
            return f"{ATTACKER}-1"
        finally:
            await backends.aclose()

    return asyncio.run(first_free())


def demo(
    ctx: typer.Context,
    attack_after: float = typer.Option(
        60.0, "--attack-after", min=0, max=3600, help="Seconds before the extraction starts."
    ),
    refresh: float | None = typer.Option(
        None,
        "--refresh",
        min=0.5,
        max=300,
        help="Seconds between refreshes of a view (default: [tui] refresh_s, 2 s).",
    ),
) -> None:
    """Start the lab if needed, schedule an extraction attack, open the console on Alerts."""
    with errors_as_exit():
        require_terminal("demo")
        cli = context(ctx)
        settings = cli.settings
        from console.lab import services

        out.print("bringing the lab up (a cold start takes a minute or two)…")
        services.up(settings)
        attacker = free_attacker(settings)
        log_dir = settings.lab_dir / "demo"
        log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if cli.config_path is not None:
            env["CONSOLE_CONFIG"] = str(Path(cli.config_path).resolve())
        with (log_dir / "attack.log").open("ab") as log:
            # Its own session: it outlives the console, bounded by its own duration and budget.
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "console",
                    "lab",
                    "attack",
                    "extraction",
                    "--client",
                    attacker,
                    "--rate",
                    "30",
                    "--duration",
                    "240",
                    "--budget",
                    "8000",
                    "--start-after",
                    f"{attack_after:g}",
                    "--output",
                    "json",
                ],
                env=env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        from console.adapters.backends import Backends
        from console.tui.app import ConsoleApp
        from console.views.catalog import declared

        keys = {name: declared(name).key for name in ("clients", "mitigations", "audit")}
        hint = (
            f"Demo: benign clients are running; {attacker} starts extracting the model in "
            f"{attack_after:g} s. Watch AMLExtractionSuspected fire here (about 30 s later), "
            f"press {keys['clients']} for Clients, select it and press b to block it; "
            f"{keys['mitigations']} shows mitigations, {keys['audit']} the audit log. "
            "? lists every key."
        )
        app = ConsoleApp(
            settings,
            Backends(settings),
            refresh_s=refresh or settings.tui.refresh_s,
            hint=hint,
        )
    app.run()
    out.print(
        "The lab is still running (`aml-console lab status`); stop it with `aml-console lab down`."
    )
