"""`aml-console tui` as a person runs it: in a real terminal (tmux), keys sent, screen read."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid

from lab_stack import LabStack
from support import REPO, unavailable


def _tmux(*args: str) -> str:
    done = subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10, check=False)
    return done.stdout


def _screen_until(session: str, text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-t", session, "-p")
        if text in screen:
            return screen
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not on screen after {timeout_s:g} s:\n{screen}")


def test_tui_in_a_terminal(tui_stack: LabStack) -> None:
    if shutil.which("tmux") is None:
        unavailable("tmux not installed (apt-get install tmux)")
    session = f"aml-tui-{uuid.uuid4().hex[:8]}"
    env = " ".join(f"{k}='{v}'" for k, v in tui_stack.env.items() if k.startswith("CONSOLE_"))
    command = f"cd {REPO} && env {env} {sys.executable} -m console tui --view clients --refresh 1"
    _tmux("new-session", "-d", "-s", session, "-x", "140", "-y", "40", command)
    try:
        _screen_until(session, "aml-console › clients", 30)
        _screen_until(session, "alice", 60)
        _tmux("send-keys", "-t", session, "5")
        _screen_until(session, "aml-console › audit", 10)
        # The view's first read runs after its first paint: under load its content comes later.
        deadline = time.monotonic() + 30
        screen = _tmux("capture-pane", "-p", "-t", session)
        while not ("verified" in screen or "no data" in screen) and time.monotonic() < deadline:
            time.sleep(0.5)
            screen = _tmux("capture-pane", "-p", "-t", session)
        assert "verified" in screen or "no data" in screen, screen
        _tmux("send-keys", "-t", session, "?")
        _screen_until(session, "Keys (esc to close)", 10)
        _tmux("send-keys", "-t", session, "Escape")
        time.sleep(0.5)
        _tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 10
        while session in _tmux("list-sessions") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session not in _tmux("list-sessions"), "q did not quit"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)


def test_demo_schedules_an_attack_that_alerts_in_the_console(tui_stack: LabStack) -> None:
    """`aml-console demo` on an already running lab: it reuses the services, starts the
    scripted extraction, the alert shows in Alerts, and quitting says the lab keeps running."""
    import json
    import os
    import signal

    from lab_stack import STACK

    from console.lab.attacks.state import list_attacks

    if shutil.which("tmux") is None:
        unavailable("tmux not installed (apt-get install tmux)")
    # A block left on mallory-1 (an earlier demo's, kept in the user's state) must not hide the
    # attack: the demo picks the first mallory-N with nothing against it.
    import asyncio
    from datetime import timedelta

    from console.adapters.backends import Backends

    async def policy(block: bool) -> None:
        backends = Backends(tui_stack.settings)
        if block:
            await backends.policy.block("mallory-1", timedelta(hours=1), "earlier demo", "t", "r")
        else:
            await backends.policy.unblock("mallory-1")
        await backends.aclose()

    asyncio.run(policy(block=True))
    session = f"aml-demo-{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in tui_stack.env.items() if k.startswith("CONSOLE_")},
        "CONSOLE_LAB__SERVICES": json.dumps(list(STACK)),
    }
    exports = " ".join(f"{k}='{v}'" for k, v in env.items())
    command = (
        f"cd {REPO} && env {exports} {sys.executable} -m console demo --attack-after 1 "
        "--refresh 1; sleep 20"
    )
    _tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40", command)
    try:
        _screen_until(session, "aml-console › alerts", 60)
        # An alert row (the hint toast names both too, but not on a line with "critical").
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            screen = _tmux("capture-pane", "-t", session, "-p")
            rows = [
                line
                for line in screen.splitlines()
                if "critical" in line and "AMLExtractionSuspected" in line
            ]
            if any("mallory-2" in row for row in rows):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no AMLExtractionSuspected row for mallory-2:\n{screen}")
        _tmux("send-keys", "-t", session, "q")
        _screen_until(session, "lab down", 15)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
        asyncio.run(policy(block=False))
        for attack in list_attacks(tui_stack.settings):
            if attack.client == "mallory-2" and attack.state == "running":
                os.kill(attack.pid, signal.SIGTERM)
