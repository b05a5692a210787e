"""`aml-console incident open|note|close|list|show|export` on a console of its own: every
write is an audit record that verifies, bad input and read-only mode are one-line refusals
that write nothing, ids never reach a path, and an export with the metrics engine down is
still written and says what it is missing."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from incident_support import audit_lines, cli, console_env, opened_id, use_console
from support import run_cli

from console.audit.verify import verify_log
from console.config import Settings
from console.incidents.model import NOTE_MAX
from console.incidents.store import IncidentStore


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    return use_console(monkeypatch, tmp_path)


def _open(*args: str) -> str:
    return opened_id(cli("incident", "open", "-o", "json", *args))


def test_open_note_close_are_audit_records_that_verify(settings: Settings) -> None:
    incident_id = _open("--client", "mallory-7", "--model", "digits", "--kind", "extraction")
    noted = cli("incident", "note", "blocked", "at", "the", "edge")  # the current incident
    assert noted.exit_code == 0, noted.output
    named = cli("incident", "note", incident_id, "budget lowered too")
    assert named.exit_code == 0, named.output
    closed = cli("incident", "close", incident_id, "--reason", "contained")
    assert closed.exit_code == 0, closed.output

    records = [r for r in audit_lines(settings) if r["run_id"] == incident_id]
    assert [r["kind"] for r in records] == [
        "incident-open",
        "incident-note",
        "incident-note",
        "incident-close",
    ]
    assert {r["operator"] for r in records} == {"alice"}
    assert [r["arguments"].get("text") for r in records[1:3]] == [
        "blocked at the edge",
        "budget lowered too",
    ]
    assert records[0]["target"] == "client:mallory-7" and records[3]["arguments"] == {
        "reason": "contained"
    }
    report = verify_log(settings.audit_path, settings.audit_key() or b"", None)
    assert report.ok and report.records == 4
    verified = cli("audit", "verify")
    assert verified.exit_code == 0, verified.output

    stored = IncidentStore(settings).get(incident_id)
    assert stored.status == "closed" and stored.closed_by == "alice"
    assert stored.close_reason == "contained"
    folder = settings.run_dir / "incidents"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / f"{incident_id}.json").stat().st_mode) == 0o600
    again = cli("incident", "close", incident_id)
    assert again.exit_code == 1 and "already closed" in again.stderr

    shown = cli("incident", "show", incident_id, "-o", "json")
    assert shown.exit_code == 0, shown.output
    timeline = json.loads(shown.stdout)["timeline"]
    kinds = [e["kind"] for e in timeline]
    assert kinds[0] == "opened" and kinds[-1] == "closed"
    assert [e["detail"] for e in timeline if e["kind"] == "note"] == [
        "blocked at the edge",
        "budget lowered too",
    ]


def test_a_note_over_the_limit_and_read_only_are_refused_writing_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident_id = _open("--client", "mallory-8", "--model", "digits")
    before = settings.audit_path.read_bytes()
    files = sorted(p.name for p in (settings.run_dir / "incidents").iterdir())

    long = cli("incident", "note", incident_id, "x" * (NOTE_MAX + 1))
    assert long.exit_code == 1
    [line] = long.stderr.strip().splitlines()
    assert f"at most {NOTE_MAX}" in line and "Traceback" not in long.output
    exactly = cli("incident", "note", incident_id, "y" * NOTE_MAX)
    assert exactly.exit_code == 0, exactly.output
    before = settings.audit_path.read_bytes()

    for args in (
        ["incident", "open", "--client", "mallory-9", "--model", "digits"],
        ["incident", "note", incident_id, "a note"],
        ["incident", "close", incident_id],
    ):
        refused = cli("--read-only", *args)
        assert refused.exit_code == 1, refused.output
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith("error: read-only mode:") and "refused" in line, line
    assert settings.audit_path.read_bytes() == before
    assert sorted(p.name for p in (settings.run_dir / "incidents").iterdir()) == files
    assert IncidentStore(settings).get(incident_id).is_open

    listed = cli("--read-only", "incident", "list", "-o", "json")
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["id"] == incident_id
    exported = cli("--read-only", "incident", "export", incident_id, "--format", "json")
    assert exported.exit_code == 0, exported.output
    assert Path(exported.stdout.strip()).is_file()


def test_unknown_and_traversal_ids_are_one_line_errors(settings: Settings, tmp_path: Path) -> None:
    _open("--client", "mallory-1", "--model", "digits")
    (tmp_path / "x.json").write_text("{}")  # what ../x would reach
    env = {**os.environ, **console_env(tmp_path)}
    for args in (
        ["incident", "show", "inc-20990101-0000-beef"],
        ["incident", "export", "../x", "--format", "md"],
        ["incident", "close", "../../run/incidents/x"],
        ["incident", "note", "inc-/../../x", "text"],
        ["incident", "show", "inc-1999"],  # a prefix of no id
    ):
        result = run_cli(args, env)
        assert result.returncode in (1, 2), (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, result.stderr)
    traversal = run_cli(["incident", "export", "../x", "--format", "md"], env)
    assert "not an incident id" in traversal.stderr
    assert not (tmp_path / "run" / "x").exists() and (tmp_path / "x.json").read_text() == "{}"


def test_recurrence_counts_a_client_family(settings: Settings) -> None:
    ids = [
        _open("--client", f"mallory-{n}", "--model", "digits", "--kind", "extraction")
        for n in (1, 2, 3)
    ]
    other = _open("--client", "eve-1", "--model", "digits", "--kind", "evasion")
    listed = cli("incident", "list", "-o", "json")
    assert listed.exit_code == 0, listed.output
    by_id = {row["id"]: row["recurrence"] for row in json.loads(listed.stdout)}
    assert by_id[ids[0]] == "mallory-* extraction on digits: 1st incident this month"
    assert by_id[ids[1]] == "mallory-* extraction on digits: 2nd incident this month"
    assert by_id[ids[2]] == "mallory-* extraction on digits: 3rd incident this month"
    assert by_id[other] == "eve-* evasion on digits: 1st incident this month"
    table = cli("incident", "list")
    assert "3rd incident this month" in table.stdout

    from datetime import UTC, datetime

    from console.incidents.recurrence import recurrence

    groups = recurrence(IncidentStore(settings).all(), datetime.now(UTC))
    top = groups[0]
    assert (top.client_family, top.attack_kind, top.model) == ("mallory-*", "extraction", "digits")
    assert (top.last_90_days, top.this_month) == (3, 3)
    assert top.text == "mallory-* extraction on digits: 3rd incident this month"

    # A game day is not the attack coming back: drills recur among drills.
    drill = IncidentStore(settings).open(
        title="drill", severity="critical", attack_kind="extraction", model="digits",
        client="mallory-1-3fa2c1", operator="alice", source="drill", drill_id="d1",
    )  # fmt: skip
    rows = json.loads(cli("incident", "list", "-o", "json").stdout)
    again = {r["id"]: r["recurrence"] for r in rows}
    assert again[drill.id] == "drill: mallory-* extraction on digits: 1st incident this month"
    assert again[ids[2]] == "mallory-* extraction on digits: 3rd incident this month"


def test_an_open_incident_on_the_same_client_is_not_opened_twice(settings: Settings) -> None:
    first = _open("--client", "mallory-5", "--model", "digits")
    twice = cli("incident", "open", "--client", "mallory-5", "--model", "digits")
    assert twice.exit_code == 1 and first in twice.stderr
    neither = cli("incident", "open")
    assert neither.exit_code == 1 and "--model or --client" in neither.stderr


def test_export_with_prometheus_down_is_written_and_says_what_is_missing(
    settings: Settings,
) -> None:
    client = "mallory-<script>alert(1)</script>|`x`\n| injected | row |"
    opened = cli("incident", "open", "-o", "json", "--client", client, "--model", "digits")
    incident_id = opened_id(opened)
    assert cli("incident", "note", incident_id, "<img src=x onerror=alert(2)> | `y`").exit_code == 0
    assert cli("incident", "note", incident_id, "![x](http://evil.example/p.png)").exit_code == 0
    paths = {}
    for fmt in ("md", "html", "json"):
        result = cli("incident", "export", incident_id, "--format", fmt)
        assert result.exit_code == 0, result.output
        path = Path(result.stdout.strip())
        assert path == settings.run_dir / "incidents" / incident_id / f"postmortem.{fmt}"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        [missing] = [line for line in result.stderr.splitlines() if "missing" in line]
        assert "prometheus" in missing and "cannot connect" in missing, missing
        paths[fmt] = path

    html = paths["html"].read_text()
    assert "<script>" not in html and "<img" not in html
    assert "mallory-&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert 'src="http' not in html and "<script" not in html  # self-contained, no script

    md = paths["md"].read_text()
    assert "<script>" not in md and "<img" not in md
    assert "## What could not be read" in md and "prometheus" in md
    for table in _tables(md):  # every row of a table keeps the header's columns
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in table}
        assert len(widths) == 1, table
    assert "\\`x\\`" in md and "mallory-&lt;script&gt;" in md
    assert "![x](" not in md and "!\\[x\\](http://evil.example/p.png)" in md

    data = json.loads(paths["json"].read_text())
    assert data["incident"]["client"] == client
    assert data["time_to_detect_s"] is None and data["time_to_mitigate_s"] is None
    assert "time_to_contain_s" in data
    assert any("prometheus" in m for m in data["missing"])
    assert data["timeline"][0]["kind"] == "opened"
    assert any(e["kind"] == "error" for e in data["timeline"])

    to_stdout = cli("incident", "export", incident_id, "--format", "json", "-o", "-")
    assert to_stdout.exit_code == 0
    assert json.loads(to_stdout.stdout)["incident"]["id"] == incident_id


def _tables(md: str) -> list[list[str]]:
    tables: list[list[str]] = []
    previous = False
    for line in md.splitlines():
        row = line.startswith("|")
        if row and not previous:
            tables.append([])
        if row:
            tables[-1].append(line)
        previous = row
    assert tables
    return tables
