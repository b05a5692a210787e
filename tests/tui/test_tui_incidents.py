"""The Incidents view (0) on the real stack, with a real IncidentStore on the test's own run
dir and its own audit log: the list newest first, the selected one's timeline, notes (`n`,
`:note` from any view), opening one from an alert (`i`, and `b` on a critical alert), hostile
client ids shown as text, and read-only mode writing nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lab_stack import LabStack
from textual.widgets import DataTable, Static
from tui_support import cells, make_app, until

from console.adapters.alertmanager import AlertmanagerClient
from console.audit.log import AuditLog
from console.config import Settings
from console.incidents.recurrence import recurrence_of
from console.incidents.store import IncidentStore
from console.tui.app import ConsoleApp
from console.tui.screens.dialogs import ConfirmActionModal, PromptScreen
from console.tui.screens.incidents import IncidentsScreen
from console.tui.screens.runbook import RunbookScreen

SIZE = (170, 45)
ESC = "\x1b"


def own_settings(stack: LabStack, tmp_path: Path, **update: Any) -> Settings:
    """The stack's settings with a run dir (so an incident store) and an audit log of the
    test's own."""
    audit = stack.settings.audit.model_copy(
        update={"path": tmp_path / "audit" / "audit.jsonl", "checkpoint_path": None}
    )
    return stack.settings.model_copy(update={"run_dir": tmp_path / "run", "audit": audit, **update})


def audit_kinds(settings: Settings, kind: str) -> list[Any]:
    return [r for r in AuditLog.from_settings(settings).records() if r.kind == kind]


def notices(app: ConsoleApp) -> list[str]:
    return [n.message for n in app._notifications]


def incident_ids(app: ConsoleApp) -> list[str]:
    if app.screen.name != "incidents":
        return []
    return [r[0] for r in cells(app, "#incidents-table")]


def timeline(app: ConsoleApp) -> list[list[str]]:
    return cells(app, "#incident-timeline")


def head(app: ConsoleApp) -> str:
    return str(app.screen.query_one("#incident-head", Static).render())


async def post_alert(stack: LabStack, labels: dict[str, str]) -> None:
    am = AlertmanagerClient.connect(stack.settings.alertmanager.url, 5.0)
    try:
        await am.post_alerts([{"labels": labels, "annotations": {"summary": "test alert"}}])
    finally:
        await am.aclose()


async def select_alert(pilot: Any, app: ConsoleApp, alertname: str) -> None:
    def names() -> list[str]:
        return [r[1] for r in cells(app, "#alerts-table")]

    await until(pilot, lambda: alertname in names(), 30, f"{alertname} listed")
    app.screen.query_one("#alerts-table", DataTable).move_cursor(row=names().index(alertname))
    await pilot.pause(0.1)


async def test_the_view_lists_incidents_newest_first_with_the_selected_ones_timeline(
    tui_stack: LabStack, tmp_path: Path
) -> None:
    settings = own_settings(tui_stack, tmp_path)
    store = IncidentStore(settings)
    start = datetime.now(UTC) - timedelta(hours=3)
    first = store.open(
        title="first extraction",
        severity="warning",
        attack_kind="extraction",
        model="digits",
        client="mallory-1",
        operator="alice",
        opened_at=start,
    )
    store.close(first.id, "bob", "blocked for good", at=start + timedelta(minutes=20))
    second = store.open(
        title="it came back",
        severity="critical",
        attack_kind="extraction",
        model="digits",
        client="mallory-2",
        operator="alice",
        opened_at=start + timedelta(hours=1),
    )
    third = store.open(
        title="a flood",
        severity="info",
        attack_kind="flood",
        model="digits",
        client="eve",
        operator="carol",
        opened_at=start + timedelta(hours=2),
    )
    app = make_app(settings, start="alerts")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("0")
        await until(pilot, lambda: len(incident_ids(app)) == 3, 15, "three incidents listed")
        rows = cells(app, "#incidents-table")
        assert [r[0] for r in rows] == [third.id, second.id, first.id]  # newest first
        assert [r[1] for r in rows] == ["● open", "● open", "closed"]  # open ones marked
        assert rows[1][2:8] == [
            "critical",
            "extraction",
            "digits",
            "mallory-2",
            f"{second.opened_at:%m-%d %H:%M}",
            "alice",
        ]
        everyone = store.all()
        assert rows[1][8] == recurrence_of(second, everyone, datetime.now(UTC)).text
        assert "mallory-* extraction on digits" in rows[1][8]  # one family: mallory-1 and -2
        summary = str(app.screen.query_one("#incidents-summary", Static).render())
        assert "3 incidents" in summary and "2 open" in summary

        await until(pilot, lambda: third.id in head(app), 20, "the newest one's timeline")
        app.screen.query_one("#incidents-table", DataTable).move_cursor(row=2)
        await until(pilot, lambda: first.id in head(app), 20, "the closed one's timeline")
        events = timeline(app)
        kinds = [e[1] for e in events]
        assert kinds[0] == "opened" and kinds[-1] == "closed"
        assert events[-1][2:] == ["closed: blocked for good", "bob"]
        assert "by alice" in events[0][2] and events[0][3] == "alice"
        assert "TTD" in head(app) and "TTM" in head(app) and "TTC" in head(app)


async def test_n_adds_a_note_to_the_timeline_and_the_audit_log(
    tui_stack: LabStack, tmp_path: Path
) -> None:
    settings = own_settings(tui_stack, tmp_path)
    incident = IncidentStore(settings).open(
        title="note me",
        severity="warning",
        attack_kind="evasion",
        model="digits",
        client="notes-client",
        operator="alice",
    )
    text = "surge from one ASN [red]x[/]; blocking"
    app = make_app(settings, start="incidents")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: incident.id in head(app), 20, "its timeline")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), 5, "the note prompt")
        await pilot.press(*text, "enter")
        await until(
            pilot,
            lambda: any(e[1] == "note" for e in timeline(app)),
            20,
            "the note in the timeline",
        )
        note = next(e for e in timeline(app) if e[1] == "note")
        assert note[2:] == [text, tui_stack.settings.operator]  # markup shown as typed
    records = audit_kinds(settings, "incident-note")
    assert [(r.run_id, r.arguments["text"], r.operator) for r in records] == [
        (incident.id, text, tui_stack.settings.operator)
    ]


async def test_colon_note_from_any_view_notes_the_current_incident(
    tui_stack: LabStack, tmp_path: Path
) -> None:
    settings = own_settings(tui_stack, tmp_path)
    store = IncidentStore(settings)
    older = store.open(
        title="older", severity="warning", attack_kind="flood", model="digits", client="c-old",
        operator="alice", opened_at=datetime.now(UTC) - timedelta(hours=1),
    )  # fmt: skip
    current = store.open(
        title="current", severity="critical", attack_kind="extraction", model="digits",
        client="c-new", operator="alice",
    )  # fmt: skip
    app = make_app(settings, start="clients")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"note it's the same botnet", "enter")
        await until(
            pilot, lambda: bool(audit_kinds(settings, "incident-note")), 10, "the note written"
        )
        assert app.screen.name == "clients"  # it stays where it was
        [record] = audit_kinds(settings, "incident-note")
        assert (record.run_id, record.arguments["text"]) == (current.id, "it's the same botnet")
        assert any(current.id in n for n in notices(app))
        assert older.id != current.id

        store.close(current.id, "alice")
        store.close(older.id, "alice")
        await pilot.press("colon", *"note nobody listens", "enter")
        await until(
            pilot,
            lambda: any("no incident is open" in n for n in notices(app)),
            10,
            "the refusal",
        )
        refusal = next(n for n in notices(app) if "no incident is open" in n)
        assert "\n" not in refusal and "i on an alert" in refusal
        assert len(audit_kinds(settings, "incident-note")) == 1


async def test_i_on_an_alert_opens_one_incident_with_its_labels_shown_as_text(
    tui_stack: LabStack, tmp_path: Path
) -> None:
    settings = own_settings(tui_stack, tmp_path)
    tag = uuid.uuid4().hex[:6]
    alertname = f"AMLExtractionTest{tag}"
    hostile = f"[red]x[/]{ESC}[2J-{tag}"
    await post_alert(
        tui_stack,
        {
            "alertname": alertname,
            "severity": "critical",
            "client": hostile,
            "model": tui_stack.model,
        },
    )
    store = IncidentStore(settings)
    app = make_app(settings, start="alerts")
    async with app.run_test(size=SIZE) as pilot:
        await select_alert(pilot, app, alertname)
        await pilot.press("i")
        await until(pilot, lambda: len(store.all()) == 1, 10, "an incident opened")
        [incident] = store.all()
        assert (incident.client, incident.model) == (hostile, tui_stack.model)
        assert (incident.severity, incident.attack_kind) == ("critical", "extraction")
        assert (incident.source, incident.alert) == ("alert", alertname)
        assert incident.opened_by == tui_stack.settings.operator
        assert app.screen.name == "alerts"  # opening one leaves the responder where they are
        [opened] = audit_kinds(settings, "incident-open")
        assert opened.run_id == incident.id

        await pilot.press("i")  # the same client again: shown, not opened twice
        await until(pilot, lambda: incident.id in incident_ids(app), 10, "shown in Incidents")
        assert [i.id for i in store.all()] == [incident.id]
        assert any("already open" in n and incident.id in n for n in notices(app))
        screen = app.screen
        assert isinstance(screen, IncidentsScreen)
        await until(pilot, lambda: screen.selected() is not None, 5, "a selection")
        assert screen.selected() is not None and screen.selected().id == incident.id  # type: ignore[union-attr]
        row = next(r for r in cells(app, "#incidents-table") if r[0] == incident.id)
        assert row[5] == f"[red]x[/]\N{REPLACEMENT CHARACTER}[2J-{tag}"  # literally, no ESC
        await until(pilot, lambda: incident.id in head(app), 20, "its timeline")
        shown = [*(c for r in cells(app, "#incidents-table") for c in r), head(app)]
        assert all(ESC not in c for c in shown)
        assert all(ESC not in c for e in timeline(app) for c in e)
        assert any(e[1] == "opened" and alertname in e[2] for e in timeline(app))


async def test_acting_on_a_critical_alert_opens_an_incident_a_warning_does_not(
    tui_stack: LabStack, tmp_path: Path
) -> None:
    settings = own_settings(tui_stack, tmp_path)
    tag = uuid.uuid4().hex[:6]
    warning, critical = f"AMLFloodWarn{tag}", f"AMLFloodCrit{tag}"
    await post_alert(
        tui_stack, {"alertname": warning, "severity": "warning", "client": f"warn-{tag}"}
    )
    await post_alert(
        tui_stack,
        {"alertname": critical, "severity": "critical", "client": f"crit-{tag}", "model": "m"},
    )
    store = IncidentStore(settings)
    app = make_app(settings, start="alerts")
    async with app.run_test(size=SIZE) as pilot:
        for name in (warning, critical):
            await select_alert(pilot, app, name)
            await pilot.press("b")
            await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 10, "the dialog")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen.name == "alerts", 5, "back on Alerts")
        await until(pilot, lambda: len(store.all()) == 1, 10, "the critical one's incident")
        [incident] = store.all()
        assert (incident.client, incident.alert) == (f"crit-{tag}", critical)
        assert (incident.attack_kind, incident.severity) == ("flood", "critical")
        await pilot.press("c")  # acting again on the same client opens no second one
        await until(pilot, lambda: isinstance(app.screen, RunbookScreen), 10, "the dialog")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen.name == "alerts", 5, "back on Alerts")
        await pilot.press("i")  # the workers run in order: this one answers after c's
        await until(pilot, lambda: app.screen.name == "incidents", 10, "the open one shown")
        assert [i.id for i in store.all()] == [incident.id]


async def test_read_only_refuses_notes_and_closing_and_writes_nothing(
    tui_stack: LabStack, tmp_path: Path
) -> None:
    writable = own_settings(tui_stack, tmp_path)
    incident = IncidentStore(writable).open(
        title="look only", severity="warning", attack_kind="probing", model="digits",
        client="ro-client", operator="alice",
    )  # fmt: skip
    before = AuditLog.from_settings(writable).records()
    settings = own_settings(tui_stack, tmp_path, read_only=True)
    app = make_app(settings, start="incidents")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: incident.id in head(app), 20, "its timeline")
        await pilot.press("n")
        await until(pilot, lambda: any("read-only" in n for n in notices(app)), 5, "refusal")
        assert not isinstance(app.screen, PromptScreen)  # nothing is asked
        await pilot.press("x")
        await pilot.press("colon", *"note sneaky", "enter")
        await until(
            pilot, lambda: len([n for n in notices(app) if "read-only" in n]) == 3, 10, "three"
        )
        assert not isinstance(app.screen, ConfirmActionModal)
        assert all("\n" not in n for n in notices(app))
    assert AuditLog.from_settings(writable).records() == before
    assert IncidentStore(writable).get(incident.id).is_open


async def test_x_closes_after_a_confirmation_and_e_exports_the_markdown(
    tui_stack: LabStack, tmp_path: Path
) -> None:
    settings = own_settings(tui_stack, tmp_path)
    store = IncidentStore(settings)
    incident = store.open(
        title="close me", severity="critical", attack_kind="extraction", model="digits",
        client="close-client", operator="alice",
    )  # fmt: skip
    app = make_app(settings, start="incidents")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: incident.id in head(app), 20, "its timeline")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), 5, "the reason prompt")
        await pilot.press(*"false alarm", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmActionModal), 5, "confirm")
        question = str(app.screen.query_one("#confirm-question", Static).render())
        assert incident.id in question
        await pilot.press("enter")  # focus is on Cancel: enter alone closes nothing
        await until(pilot, lambda: app.screen.name == "incidents", 5, "back, not closed")
        assert store.get(incident.id).is_open

        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), 5, "the reason prompt")
        await pilot.press(*"false alarm", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmActionModal), 5, "confirm")
        await pilot.press("y")
        await until(pilot, lambda: not store.get(incident.id).is_open, 10, "closed")
        closed = store.get(incident.id)
        assert (closed.closed_by, closed.close_reason) == (settings.operator, "false alarm")
        await until(
            pilot,
            lambda: (
                cells(app, "#incidents-table")[0][1] == "closed"
                and any(e[1] == "closed" for e in timeline(app))
            ),
            20,
            "shown closed, with its close in the timeline",
        )
        [record] = audit_kinds(settings, "incident-close")
        assert record.run_id == incident.id and record.arguments["reason"] == "false alarm"

        await pilot.press("e")
        await until(
            pilot,
            lambda: any(n.startswith("postmortem written: ") for n in notices(app)),
            60,
            "the export's toast",
        )
        shown = next(n for n in notices(app) if n.startswith("postmortem written: "))
        path = Path(shown.removeprefix("postmortem written: ").split(" (")[0])
        assert path == settings.run_dir / "incidents" / incident.id / "postmortem.md"
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# Postmortem draft: close me") and incident.id in text
