"""Everything the TUI shows can be written by an attacker (alert labels and annotations come
from the gateway's metrics, i.e. from client ids). Markup, ANSI, OSC 8 and OSC 52 sequences in
them must be shown as text, never interpreted."""

from __future__ import annotations

import uuid

from lab_stack import LabStack
from textual.widgets import Static
from tui_support import cells, stack_app, until

from console.adapters.alertmanager import AlertmanagerClient
from console.tui.text import plain, printable

ESC, BEL = "\x1b", "\x07"
HOSTILE_CLIENT = (
    f"[bold red]x[/] {ESC}[31mred{ESC}[0m {ESC}]8;;http://evil.example/{BEL}link{ESC}]8;;{BEL}"
    f" {ESC}]52;c;ZXZpbA=={BEL}"
)
HOSTILE_MODEL = "[link=http://evil.example]m[/link]"


def test_printable_replaces_every_control_character() -> None:
    shown = printable(HOSTILE_CLIENT)
    assert ESC not in shown and BEL not in shown
    assert "[bold red]x[/]" in shown and "]52;c;ZXZpbA==" in shown
    text = plain(HOSTILE_MODEL)
    assert text.plain == HOSTILE_MODEL and not text.spans  # no markup was parsed


async def test_hostile_alert_labels_are_shown_as_text(tui_stack: LabStack) -> None:
    alertname = f"AMLHostile{uuid.uuid4().hex[:6]}"
    am = AlertmanagerClient.connect(tui_stack.settings.alertmanager.url, 5.0)
    try:
        await am.post_alerts(
            [
                {
                    "labels": {
                        "alertname": alertname,
                        "severity": "critical",
                        "client": HOSTILE_CLIENT,
                        "model": HOSTILE_MODEL,
                    },
                    "annotations": {
                        "summary": f"[blink]{HOSTILE_CLIENT}[/blink]",
                        "description": HOSTILE_MODEL,
                    },
                }
            ]
        )
    finally:
        await am.aclose()
    app = stack_app(tui_stack, start="alerts")
    async with app.run_test(size=(160, 40)) as pilot:

        def row() -> list[str] | None:
            return next((r for r in cells(app, "#alerts-table") if r[1] == alertname), None)

        await until(pilot, lambda: row() is not None, 30, "the hostile alert listed")
        shown = row()
        assert shown is not None
        assert shown[2].startswith("[bold red]x[/] \N{REPLACEMENT CHARACTER}[31mred")
        assert shown[3] == HOSTILE_MODEL
        assert all(ESC not in c and BEL not in c for c in shown)
        names = [r[1] for r in cells(app, "#alerts-table")]
        app.screen.query_one("#alerts-table").move_cursor(row=names.index(alertname))  # type: ignore[attr-defined]
        await pilot.pause(0.2)
        detail = app.screen.query_one("#alert-detail", Static).render()
        assert HOSTILE_MODEL in str(detail) and ESC not in str(detail)
