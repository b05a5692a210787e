"""Two-person approval in the TUI (issue 15), with Pilot on the session lab's real Redis and a
real audit log (an isolated key prefix and log per test): a request of alice's appears in
bob's Pending view and as a toast on his console; bob approves (`a`) or denies (`d`, with a
reason), each after a confirmation; alice cannot approve her own; the refusals of the
approvals service (not an approver, read-only, expired) are one-line toasts that change
nothing; the runbook dialog waits for another operator's approval (given with the CLI in
another process) and then applies; the top bar names the operator and where the name came
from; a requester's markup is shown as typed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Static
from tui_support import cells, until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runbooks"))

from runbook_support import (  # noqa: E402
    REPO,
    Console,
    audit_records,
    make_console,
    policy_key,
    redis_client,
)

from console.adapters.approval_store import ApprovalRecord  # noqa: E402
from console.adapters.backends import Backends  # noqa: E402
from console.config import Settings, load_settings  # noqa: E402
from console.tui.app import ConsoleApp  # noqa: E402
from console.tui.screens.base import TopBar  # noqa: E402
from console.tui.screens.dialogs import ConfirmActionModal, PromptScreen  # noqa: E402
from console.tui.screens.pending import DecisionModal, PendingScreen  # noqa: E402
from console.tui.screens.runbook import RunbookScreen  # noqa: E402

SIZE = (160, 45)
CHANGES = {"CONSOLE_APPROVALS__REQUIRED": "changes"}


class RecordingApp(ConsoleApp):
    """The console, keeping every toast it was asked to show (Textual drops expired ones)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, Backends(settings), refresh_s=0.5, **kwargs)
        self.toasts: list[tuple[str, dict[str, Any]]] = []

    def notify(self, message: str, **kwargs: Any) -> None:
        self.toasts.append((message, kwargs))
        super().notify(message, **kwargs)

    def said(self, *parts: str) -> bool:
        return any(all(p in message for p in parts) for message, _ in self.toasts)


@pytest.fixture
def console(lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Console:
    return make_console(lab, tmp_path, monkeypatch)


def as_operator(monkeypatch: pytest.MonkeyPatch, name: str, **env: str) -> Settings:
    """The context's settings as ``name`` sees them ($CONSOLE_OPERATOR), with ``env`` set."""
    monkeypatch.setenv("CONSOLE_OPERATOR", name)
    for key in (
        *CHANGES,
        "CONSOLE_APPROVALS__TTL",
        "CONSOLE_APPROVALS__APPROVERS",
        "CONSOLE_READ_ONLY",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


async def request(settings: Settings, client: str) -> ApprovalRecord:
    """A block-client run planned and put up for approval by ``settings.operator``."""
    from console.runbooks.engine import RunbookEngine
    from console.runbooks.loader import find_runbook

    engine = RunbookEngine(settings)
    loaded = find_runbook("block-client", settings.runbook_search_path, settings)
    plan = await engine.plan(loaded, {"client": client, "reason": "pending view test"})
    need = engine.approval_for(plan)
    assert need is not None, "the context requires approval of changes"
    return await engine.request_approval(plan, need)


async def stored(settings: Settings, run_id: str) -> ApprovalRecord:
    sources = Backends(settings)
    try:
        record, _ = await sources.approvals.read(run_id)
        return record
    finally:
        await sources.aclose()


def kinds(console: Console, run_id: str) -> list[tuple[str, str, str | None]]:
    return [
        (r["kind"], r["operator"], r["result"])
        for r in audit_records(console)
        if r["run_id"] == run_id
    ]


def detail(app: ConsoleApp) -> str:
    return str(app.screen.query_one("#pending-detail", Static).render())


async def pending_row(pilot: Any, app: ConsoleApp, run_id: str) -> list[str]:
    """The row of ``run_id`` once the Pending view lists it, with the cursor on it."""
    await until(
        pilot,
        lambda: any(r[0] == run_id for r in cells(app, "#pending-table")),
        30,
        f"run {run_id} listed",
    )
    rows = cells(app, "#pending-table")
    index = [r[0] for r in rows].index(run_id)
    app.screen.query_one("#pending-table").move_cursor(row=index)  # type: ignore[attr-defined]
    await pilot.pause(0.1)
    return rows[index]


async def test_bob_is_told_of_alices_request_and_approves_it_from_pending(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = as_operator(monkeypatch, "alice", **CHANGES)
    bob = as_operator(monkeypatch, "bob")
    app = RecordingApp(bob, start="pending")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.view("pending").refreshes >= 1, 30, "first read")
        assert "no approval requests" in detail(app)
        made = await request(alice, "pd-c1")
        run_id = made.run_id
        await until(
            pilot,
            lambda: app.said(
                f"approval requested: alice wants block-client on client:pd-c1 (run {run_id})"
                " - 9 to review"
            ),
            30,
            "the toast of a new request",
        )
        row = await pending_row(pilot, app, run_id)
        assert row[1:5] == ["block-client", "client:pd-c1", "alice", "pending"]
        assert row[6].startswith("context test (test) requires approval for every run")
        shown = detail(app)
        assert "block (policy.block_client)" in shown
        assert "approvers: any other operator the ACL lets approve" in shown
        assert "a approve  d deny" in shown

        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, DecisionModal), 5, "the confirmation")
        await pilot.press("n")  # cancelled: nothing decided
        await until(pilot, lambda: isinstance(app.screen, PendingScreen), 5, "back")
        assert (await stored(bob, run_id)).status == "pending"
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, DecisionModal), 5, "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: app.said(f"run {run_id} approved"), 30, "approved")
        record = await stored(bob, run_id)
        assert (record.status, record.decided_by, record.requester) == ("approved", "bob", "alice")
        await until(
            pilot,
            lambda: any(
                r[0] == run_id and r[4] == "approved by bob" for r in cells(app, "#pending-table")
            ),  # fmt: skip
            30,
            "the row decided",
        )
    assert kinds(console, run_id) == [
        ("approval-request", "alice", "pending"),
        ("approval-approve", "bob", "approved"),
    ]
    assert not redis_client(console).exists(policy_key(console, "block", "pd-c1"))


async def test_d_denies_with_a_reason_that_is_required(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = as_operator(monkeypatch, "alice", **CHANGES)
    made = await request(alice, "pd-c2")
    run_id = made.run_id
    bob = as_operator(monkeypatch, "bob")
    app = RecordingApp(bob, start="pending")
    async with app.run_test(size=SIZE) as pilot:
        # Already waiting when the console starts: one toast says so.
        await until(pilot, lambda: app.said("alice wants block-client"), 30, "startup toast")
        await pending_row(pilot, app, run_id)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), 5, "the reason prompt")
        await pilot.press("enter")  # no reason
        await until(pilot, lambda: app.said("a denial needs a reason"), 5, "reason required")
        assert isinstance(app.screen, PendingScreen)
        assert (await stored(bob, run_id)).status == "pending"
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), 5, "the reason prompt")
        app.screen.query_one(Input).value = "false positive: a partner"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DecisionModal), 5, "the confirmation")
        assert "reason: false positive: a partner" in str(
            app.screen.query_one("#confirm-question", Static).render()
        )
        await pilot.press("y")
        await until(pilot, lambda: app.said(f"run {run_id} denied"), 30, "denied")
    record = await stored(bob, run_id)
    assert (record.status, record.decided_by, record.reason) == (
        "denied",
        "bob",
        "false positive: a partner",
    )
    denials = [r for r in audit_records(console) if r["kind"] == "approval-deny"]
    assert [(r["operator"], r["arguments"]["reason"]) for r in denials] == [
        ("bob", "false positive: a partner")
    ]


async def test_refusals_are_one_line_toasts_and_change_nothing(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = as_operator(monkeypatch, "alice", **CHANGES)
    own = (await request(alice, "pd-c3")).run_id
    app = RecordingApp(alice, start="pending")
    async with app.run_test(size=SIZE) as pilot:
        await pending_row(pilot, app, own)
        assert "your request: another operator must approve it" in detail(app)
        await pilot.press("a")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PendingScreen)  # not even asked
        assert app.said(f"alice requested run {own}: another operator must approve it "
                        "(two-person rule); nothing was changed")  # fmt: skip
        # The service refuses it too, whatever the screen checks first.
        screen = app.screen
        assert isinstance(screen, PendingScreen)
        screen._decide(own, None)
        await until(
            pilot,
            lambda: sum("two-person rule" in m for m, _ in app.toasts) == 2,
            30,
            "the service's refusal",
        )
    assert (await stored(alice, own)).status == "pending"
    assert [k for k, _, _ in kinds(console, own)] == ["approval-request"]

    named = as_operator(monkeypatch, "alice", CONSOLE_APPROVALS__APPROVERS='["carol"]', **CHANGES)
    for_carol = (await request(named, "pd-c4")).run_id
    quick = as_operator(monkeypatch, "alice", CONSOLE_APPROVALS__TTL="1s", **CHANGES)
    expiring = (await request(quick, "pd-c5")).run_id
    bob = as_operator(monkeypatch, "bob")
    app = RecordingApp(bob, start="pending")
    async with app.run_test(size=SIZE) as pilot:
        await pending_row(pilot, app, for_carol)
        assert "approvers: carol" in detail(app)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, DecisionModal), 5, "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: app.said(f"bob is not an approver of run {for_carol}"), 30,
                    "not an approver")  # fmt: skip
        await until(
            pilot,
            lambda: any(
                r[0] == expiring and r[4] == "expired" for r in cells(app, "#pending-table")
            ),  # fmt: skip
            30,
            "the view marks the request past its ttl expired",
        )
        await pending_row(pilot, app, expiring)
        await pilot.press("a")
        await pilot.pause(0.2)
        assert app.said(f"run {expiring} is expired: nothing to approve")
        assert isinstance(app.screen, PendingScreen)
    for message, _ in app.toasts:
        assert "\n" not in message and "Traceback" not in message
    assert (await stored(bob, for_carol)).status == "pending"
    assert [k for k, _, _ in kinds(console, for_carol)] == ["approval-request"]
    assert (await stored(bob, expiring)).status == "expired"

    read_only = as_operator(monkeypatch, "bob", CONSOLE_READ_ONLY="true")
    app = RecordingApp(read_only, start="pending")
    async with app.run_test(size=SIZE) as pilot:
        await pending_row(pilot, app, for_carol)
        await pilot.press("a")
        await pilot.pause(0.2)
        assert app.said(f"read-only mode: approve run {for_carol} was refused")
        assert isinstance(app.screen, PendingScreen)
    assert (await stored(bob, for_carol)).status == "pending"


def cli(console: Console, operator: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`aml-console ARGS` as ``operator``, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        env={**console.env, "CONSOLE_OPERATOR": operator},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def open_and_request(pilot: Any, app: RecordingApp, client: str) -> RunbookScreen:
    """The block-client dialog planned and applied (confirmed), waiting for approval."""
    app.open_runbook("block-client", {"client": client, "reason": "dialog approval test"})
    await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 10, "the dialog")
    dialog = app.screen
    assert isinstance(dialog, RunbookScreen)
    await pilot.press("p")
    await until(pilot, lambda: dialog.plan is not None, 30, "a plan")
    result = dialog.query_one("#result", Static)
    assert "approval required: context" in str(result.render())
    assert "requires approval for every run that changes something" in str(result.render())
    await pilot.press("y")
    await until(pilot, lambda: isinstance(app.screen, ConfirmActionModal), 5, "confirm")
    await pilot.press("y")
    await until(pilot, lambda: dialog.waiting is not None, 30, "the request")
    assert dialog.waiting is not None
    run_id = dialog.waiting.run_id
    await until(
        pilot,
        lambda: "waiting for approval by another operator (expires" in str(result.render()),
        10,
        "the waiting line",
    )
    shown = str(result.render())
    assert f"; run {run_id})" in shown and " left" in shown
    return dialog


def log_text(dialog: RunbookScreen) -> str:
    return "\n".join(str(line.text) for line in dialog.log_view.lines)


async def test_the_dialog_waits_for_another_operator_then_applies(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = as_operator(monkeypatch, "alice", **CHANGES)
    app = RecordingApp(alice, start="pending")
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_and_request(pilot, app, "pd-c6")
        assert dialog.waiting is not None
        run_id = dialog.waiting.run_id
        assert not redis_client(console).exists(policy_key(console, "block", "pd-c6"))
        approved = await asyncio.to_thread(cli, console, "bob", "approve", run_id, "--yes")
        assert approved.returncode == 0, approved.stdout + approved.stderr
        await until(pilot, lambda: dialog.state is not None, 60, "the run")
        assert dialog.state is not None and dialog.state.status == "succeeded"
        assert "approved by bob: applying" in log_text(dialog)
        await until(pilot, lambda: app.said(f"your run {run_id}", "was approved by bob"), 30,
                    "alice's toast")  # fmt: skip
    assert redis_client(console).exists(policy_key(console, "block", "pd-c6"))
    chain = kinds(console, run_id)
    assert chain[:2] == [
        ("approval-request", "alice", "pending"),
        ("approval-approve", "bob", "approved"),
    ]
    # then the approval's use (if the service records it) and the run, as alice
    assert ("run-intent", "alice", "planned") in chain[2:4]
    assert chain[-1] == ("run-outcome", "alice", "succeeded")


async def test_the_dialog_shows_a_denial_and_closing_it_leaves_the_request_pending(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = as_operator(monkeypatch, "alice", **CHANGES)
    app = RecordingApp(alice, start="pending")
    async with app.run_test(size=SIZE) as pilot:
        dialog = await open_and_request(pilot, app, "pd-c7")
        assert dialog.waiting is not None
        denied_id = dialog.waiting.run_id
        denied = await asyncio.to_thread(
            cli, console, "bob", "deny", denied_id, "--reason", "not this one", "--yes"
        )
        assert denied.returncode == 0, denied.stdout + denied.stderr
        await until(pilot, lambda: dialog.waiting is None, 30, "the decision")
        assert f"run {denied_id}: denied by bob: not this one" in log_text(dialog)
        assert dialog.state is None
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, PendingScreen), 5, "closed")

        dialog = await open_and_request(pilot, app, "pd-c8")
        assert dialog.waiting is not None
        left_id = dialog.waiting.run_id
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, PendingScreen), 5, "closed")
        assert app.said(f"run {left_id} stays pending until", f"runbook resume {left_id}")
        await pending_row(pilot, app, left_id)
    assert (await stored(alice, left_id)).status == "pending"
    for client in ("pd-c7", "pd-c8"):
        assert not redis_client(console).exists(policy_key(console, "block", client))


async def test_the_top_bar_names_the_operator_and_markup_stays_literal(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    marked = as_operator(monkeypatch, "[red]x[/]", **CHANGES)
    app = RecordingApp(marked, start="pending")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.view("pending").refreshes >= 1, 30, "first read")
        bar = str(app.screen.query_one(TopBar).render())
        assert "operator [red]x[/] ($CONSOLE_OPERATOR)" in bar
    run_id = (await request(marked, "pd-c9")).run_id
    bob = as_operator(monkeypatch, "bob")
    app = RecordingApp(bob, start="pending")
    async with app.run_test(size=SIZE) as pilot:
        row = await pending_row(pilot, app, run_id)
        assert row[3] == "[red]x[/]"
        assert "requested by [red]x[/]" in detail(app)
        await until(pilot, lambda: app.said("approval requested: [red]x[/] wants"), 30, "toast")
        toast = next(kw for m, kw in app.toasts if "[red]x[/] wants" in m)
        assert toast["markup"] is False
        assert "operator bob ($CONSOLE_OPERATOR)" in str(app.screen.query_one(TopBar).render())


async def test_redis_down_is_one_warning_toast_however_often_the_watch_retries(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.tui import approval_watch
    from console.views import pending

    monkeypatch.setattr(approval_watch, "RETRY_S", (0.05, 0.1))
    tries = []
    approvals_of = pending.approvals_of

    def counted(backends: Backends) -> Any:
        tries.append(1)
        return approvals_of(backends)

    monkeypatch.setattr(pending, "approvals_of", counted)
    down = as_operator(monkeypatch, "bob", CONSOLE_REDIS__URL="redis://127.0.0.1:1/0")
    app = RecordingApp(down, start="runbooks")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(tries) >= 4, 60, "the watch retried")
        paused = [m for m, _ in app.toasts if "approval toasts paused" in m]
        assert len(paused) == 1, app.toasts
        assert "redis" in paused[0] and "\n" not in paused[0]
