"""A secret parameter can name no lease: not in the target, not in what a step changes (plan
header, audit target, run state and the Redis lock key would hold it in clear)."""

from __future__ import annotations

from pathlib import Path

from runbook_support import Console, lock_keys, redis_client
from support import run_cli
from typer.testing import CliRunner

from console.cli.main import app

CANARY = "CANARY-tok-91c2"

SECRET_TARGET = """\
name: secret-target
target: "gateway:{{ params.token }}"
parameters:
  token: {type: secret, required: true}
steps:
  - id: notify
    action: http.request
    with:
      method: GET
      url: "AM_URL/api/v2/status"
      headers: {Authorization: "Bearer {{ params.token }}"}
      expect_status: [200]
"""

SECRET_LABEL = """\
name: secret-label
target: "client:{{ params.client }}"
parameters:
  client: {type: string, required: true, pattern: '^[a-z0-9-]+$'}
  token: {type: secret, required: true}
steps:
  - id: silence
    action: alertmanager.silence
    with:
      alertname: AMLTest
      labels:
        client: "{{ params.client }}"
        session: "{{ params.token }}"
      duration: 10m
"""


def test_validate_refuses_a_secret_in_the_target(console: Console, tmp_path: Path) -> None:
    path = tmp_path / "secret-target.yaml"
    path.write_text(SECRET_TARGET.replace("AM_URL", console.settings.alertmanager.url))
    result = CliRunner().invoke(app, ["runbook", "validate", str(path)])
    assert result.exit_code == 1, result.output
    expected = "target: {{ params.token }}: a secret parameter cannot be in the target"
    assert f"{path}:2: {expected}" in result.output
    labels = tmp_path / "secret-label.yaml"
    labels.write_text(SECRET_LABEL)
    result = CliRunner().invoke(app, ["runbook", "validate", str(labels)])
    assert result.exit_code == 1, result.output
    assert f"{labels}:13: steps.0.with.labels.session: {{{{ params.token }}}}: a secret " in (
        result.output
    )


def test_a_run_with_a_secret_in_its_target_writes_it_nowhere(
    console: Console, tmp_path: Path
) -> None:
    path = tmp_path / "secret-target.yaml"
    path.write_text(SECRET_TARGET.replace("AM_URL", console.settings.alertmanager.url))
    result = run_cli(["runbook", "run", str(path), "-p", f"token={CANARY}", "--yes"], console.env)
    assert result.returncode == 1
    assert "a secret parameter cannot be in the target" in result.stderr
    assert CANARY not in result.stdout + result.stderr
    for file in (p for p in console.run_dir.rglob("*") if p.is_file()):
        assert CANARY.encode() not in file.read_bytes(), file
    prefix = console.settings.redis.key_prefix
    assert not [k for k in redis_client(console).keys(f"{prefix}:*") if CANARY in k]
    assert lock_keys(console) == []
