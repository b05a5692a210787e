"""From the CLI, against the authenticated servers: a runbook that silences an alert in an
Alertmanager behind TLS and basic auth runs end to end; with wrong or missing credentials it
stops with the one-line refusal and creates nothing; a certificate problem is one line naming
it; the ``http.request`` action carries a host's configured credentials; and no password,
token or header value is ever printed, planned or written."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from auth_support import AuthConsole, AuthServer, Pki, auth_console
from support import LabHandle, run_cli

from console.adapters.alertmanager import AlertmanagerClient, Matcher, Silence
from console.config import AlertmanagerSection


def silences_named(server: AuthServer, alertname: str) -> list[Silence]:
    """Every silence of ``alertname``, read as the admin (not through the console under test)."""
    section = AlertmanagerSection(**server.section())

    async def read() -> list[Silence]:
        client = AlertmanagerClient.connect(section.url, 5, options=section)
        try:
            silences = await client.silences()
        finally:
            await client.aclose()
        wanted = [Matcher(name="alertname", value=alertname)]
        return [s for s in silences if s.matches(wanted)]

    return asyncio.run(read())


def silence_args(alertname: str, *extra: str) -> list[str]:
    return ["runbook", "run", "silence-alert", "-p", f"alertname={alertname}", *extra]


def test_silence_alert_runs_end_to_end_on_an_authenticated_alertmanager(
    lab: LabHandle, auth_alertmanager: AuthServer, tmp_path: Path
) -> None:
    console = auth_console(lab, tmp_path, {"alertmanager": auth_alertmanager.section()})
    alertname = f"AuthE2E{uuid.uuid4().hex[:8]}"
    result = run_cli([*silence_args(alertname), "--yes", "-o", "json"], console.env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["run"]["status"] == "succeeded"
    made = silences_named(auth_alertmanager, alertname)
    assert [s.state for s in made] == ["active"]
    assert made[0].createdBy == "auth-tester"


@pytest.mark.parametrize(
    ("auth", "ending"),
    [
        ("wrong", "refused the credentials (401)"),
        ("none", "refused the credentials (401): no credentials configured"),
    ],
)
def test_wrong_or_missing_credentials_are_one_line_and_nothing_is_applied(
    lab: LabHandle, auth_alertmanager: AuthServer, tmp_path: Path, auth: str, ending: str
) -> None:
    section = auth_alertmanager.section(auth=auth)
    console = auth_console(lab, tmp_path, {"alertmanager": section})
    alertname = f"AuthRefused{uuid.uuid4().hex[:8]}"
    result = run_cli([*silence_args(alertname), "--yes"], console.env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].endswith(f"alertmanager at {auth_alertmanager.url} {ending}")
    assert "Traceback" not in result.stderr + result.stdout
    assert silences_named(auth_alertmanager, alertname) == []


@pytest.mark.parametrize("ca", [False, "other"])
def test_a_tls_failure_is_one_line_naming_the_certificate_problem(
    lab: LabHandle, auth_alertmanager: AuthServer, pki: Pki, tmp_path: Path, ca: str | bool
) -> None:
    section = auth_alertmanager.section(ca=pki.other_ca if ca == "other" else False)
    console = auth_console(lab, tmp_path, {"alertmanager": section})
    alertname = f"AuthTls{uuid.uuid4().hex[:8]}"
    result = run_cli([*silence_args(alertname), "--yes"], console.env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"alertmanager at {auth_alertmanager.url}: TLS: certificate verify failed" in lines[0]
    assert "(set tls_config.ca_file)" in lines[0]
    assert silences_named(auth_alertmanager, alertname) == []


def test_a_bad_auth_config_is_one_line_naming_the_field(
    lab: LabHandle, auth_alertmanager: AuthServer, tmp_path: Path
) -> None:
    section = auth_alertmanager.section()
    section["basic_auth"]["password"] = "both-set"
    console = auth_console(lab, tmp_path, {"alertmanager": section})
    result = run_cli([*silence_args("X"), "--dry-run"], console.env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "alertmanager.basic_auth" in lines[0], result.stderr
    assert "set exactly one of password and password_file" in lines[0]
    assert "both-set" not in result.stderr


HEADER_CANARY = "tenant-CANARY-9d3b57"
BEARER_CANARY = "bearer-CANARY-27ae0f"


def _status_runbook(path: Path, alertmanager_url: str) -> Path:
    """GET Alertmanager's status with the host's configured basic auth (200), and through
    ``localhost`` with a bearer token it refuses (401, expected): both travel, neither shows."""
    localhost_url = alertmanager_url.replace("127.0.0.1", "localhost")
    path.write_text(
        f"""\
name: am-status
target: "alertmanager:status"
steps:
  - id: status
    action: http.request
    with:
      method: GET
      url: "{alertmanager_url}/api/v2/status"
      expect_status: [200]
  - id: bearer
    action: http.request
    with:
      method: GET
      url: "{localhost_url}/api/v2/status"
      expect_status: [401]
"""
    )
    return path


def _canary_console(
    lab: LabHandle, server: AuthServer, pki: Pki, tmp_path: Path, *, auth: str = "inline"
) -> AuthConsole:
    basic = server.section(auth=auth)
    sections = {
        "alertmanager": server.section(
            auth=auth, extra={"headers": {"X-Scope-OrgID": HEADER_CANARY}}
        ),
        "http_action": {
            "allowed_hosts": ["127.0.0.1", "localhost"],
            "auth": {
                "127.0.0.1": {
                    "basic_auth": basic["basic_auth"],
                    "headers": {"X-Api-Key": HEADER_CANARY},
                    "tls_config": {"ca_file": str(pki.ca)},
                },
                "localhost": {
                    "authorization": {"credentials": BEARER_CANARY},
                    "tls_config": {"ca_file": str(pki.ca)},
                },
            },
        },
    }
    return auth_console(lab, tmp_path, sections)


def test_http_request_carries_the_hosts_credentials_and_no_secret_is_ever_shown(
    lab: LabHandle, auth_alertmanager: AuthServer, pki: Pki, tmp_path: Path
) -> None:
    """The secrets canary for configured credentials: the basic-auth password, a bearer
    token and header values reach the servers (the runs succeed only if they do) and appear in
    no output, plan, run state or audit record."""
    console = _canary_console(lab, auth_alertmanager, pki, tmp_path)
    runbook = _status_runbook(tmp_path / "am-status.yaml", auth_alertmanager.url)
    planned = run_cli(["runbook", "run", str(runbook), "--dry-run", "-o", "json"], console.env)
    ran = run_cli(["runbook", "run", str(runbook), "--yes", "-o", "json"], console.env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["run"]["status"] == "succeeded"
    alertname = f"AuthCanary{uuid.uuid4().hex[:8]}"
    silenced = run_cli([*silence_args(alertname), "--yes", "-o", "json"], console.env)
    assert silenced.returncode == 0, silenced.stderr
    assert planned.returncode == 0, planned.stderr

    canaries = [auth_alertmanager.password, BEARER_CANARY, HEADER_CANARY]
    shown = "".join(r.stdout + r.stderr for r in (planned, ran, silenced))
    written = console.written_files()
    assert any(p.name == "audit.jsonl" for p in written)
    assert any(p.name == "state.json" for p in written)  # the run state (its plans) too
    for canary in canaries:
        assert canary not in shown
        for path in written:
            assert canary.encode() not in path.read_bytes(), (canary, path)


def test_http_request_refused_by_its_host_is_the_auth_error(
    lab: LabHandle, auth_alertmanager: AuthServer, pki: Pki, tmp_path: Path
) -> None:
    console = _canary_console(lab, auth_alertmanager, pki, tmp_path, auth="wrong")
    runbook = _status_runbook(tmp_path / "am-status.yaml", auth_alertmanager.url)
    result = run_cli(["runbook", "run", str(runbook), "--yes"], console.env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].endswith(f"http at {auth_alertmanager.url} refused the credentials (401)")
    assert HEADER_CANARY not in result.stderr + result.stdout
