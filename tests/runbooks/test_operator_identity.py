"""Who the operator is (issue 15), by the context's ``[identity] source``: the name and where
it came from on the plan, an SSO wrapper's header, and the refusals: a name the source forbids,
no header, a header that is not a printable name. Each is one line, and nothing runs."""

from __future__ import annotations

from click.testing import Result
from runbook_support import Console
from typer.testing import CliRunner

from console.cli.main import app
from console.operator_identity import os_user

DRY_RUN = ["runbook", "run", "block-client", "-p", "client=id-c1", "-p", "reason=who", "--dry-run"]


def _dry_run(**env: str | None) -> Result:
    return CliRunner().invoke(app, DRY_RUN, env=env)


def test_the_plan_names_the_operator_and_the_source(console: Console) -> None:
    auto = _dry_run(CONSOLE_OPERATOR="alice")
    assert auto.exit_code == 0, auto.output
    assert "operator alice ($CONSOLE_OPERATOR)" in auto.stdout

    pinned = _dry_run(CONSOLE_OPERATOR=None, CONSOLE_IDENTITY__SOURCE="os")
    assert pinned.exit_code == 0, pinned.output
    assert f"operator {os_user()} (OS user)" in pinned.stdout

    sso = _dry_run(
        CONSOLE_OPERATOR=None,
        CONSOLE_IDENTITY__SOURCE="sso-header",
        HTTP_X_FORWARDED_USER="carol@example.com",
    )
    assert sso.exit_code == 0, sso.output
    assert "operator carol@example.com (SSO X-Forwarded-User)" in sso.stdout


def test_a_name_the_source_forbids_is_refused_in_one_line(console: Console) -> None:
    claimed = _dry_run(CONSOLE_OPERATOR="not-the-os-user", CONSOLE_IDENTITY__SOURCE="os")
    assert claimed.exit_code == 1
    assert "identity.source is os" in claimed.stderr and "not-the-os-user" in claimed.stderr
    assert len(claimed.stderr.strip().splitlines()) == 1

    headerless = _dry_run(CONSOLE_OPERATOR=None, CONSOLE_IDENTITY__SOURCE="sso-header")
    assert headerless.exit_code == 1
    assert "set no X-Forwarded-User ($HTTP_X_FORWARDED_USER)" in headerless.stderr

    other = _dry_run(
        CONSOLE_OPERATOR="mallory",
        CONSOLE_IDENTITY__SOURCE="sso-header",
        HTTP_X_FORWARDED_USER="carol",
    )
    assert other.exit_code == 1 and "is 'carol' from X-Forwarded-User" in other.stderr

    control = _dry_run(
        CONSOLE_OPERATOR=None,
        CONSOLE_IDENTITY__SOURCE="sso-header",
        HTTP_X_FORWARDED_USER="carol\x1b[2J",
    )
    assert control.exit_code == 1 and "printable" in control.stderr
    assert "Traceback" not in control.output
