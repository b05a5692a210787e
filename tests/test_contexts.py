"""Config lookup and contexts, as kubectl's: which file (``--config``, ``$CONSOLE_CONFIG``,
the user's file, the built-in lab), which context (``--context``, ``$CONSOLE_CONTEXT``, the
file's current one), where each context keeps its state, and the ``config`` commands."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO
from typer.testing import CliRunner

from console.cli.main import app
from console.config import load_settings
from console.errors import ConfigError

TWO_CONTEXTS = """\
# the team's contexts
current_context = "staging"
operator = "shared-op"

[redis]
key_prefix = "team"

[contexts.staging]
environment = "staging"

[contexts.prod]
environment = "prod"
read_only = true
[contexts.prod.redis]
url = "redis://10.0.0.9:6379/0"
"""


@pytest.fixture(autouse=True)
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user of their own: XDG config and state under tmp_path, no CONSOLE_* overrides."""
    for name in list(os.environ):
        if name.startswith("CONSOLE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))
    return tmp_path


def _file(tmp_path: Path, text: str = TWO_CONTEXTS) -> Path:
    path = tmp_path / "contexts.toml"
    path.write_text(text)
    return path


def test_a_context_is_its_own_settings_over_the_shared_ones(tmp_path: Path) -> None:
    config = _file(tmp_path)
    staging = load_settings(config)  # current_context
    assert (staging.context, staging.environment, staging.read_only) == (
        "staging",
        "staging",
        False,
    )
    prod = load_settings(config, "prod")
    assert (prod.context, prod.environment, prod.read_only) == ("prod", "prod", True)
    assert prod.redis.url == "redis://10.0.0.9:6379/0"
    assert prod.redis.key_prefix == "team" and prod.operator == "shared-op"  # merged, not replaced
    state = tmp_path / "state-home" / "aml-console" / "contexts"
    assert staging.run_dir == state / "staging" and prod.run_dir == state / "prod"
    assert prod.audit_path == state / "prod" / "audit" / "audit.jsonl"
    assert prod.traces.path == str(state / "prod" / "traces")


def test_the_environment_chooses_unless_the_option_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _file(tmp_path)
    monkeypatch.setenv("CONSOLE_CONTEXT", "prod")
    assert load_settings(config).context == "prod"
    assert load_settings(config, "staging").context == "staging"


def test_an_unknown_or_unchosen_context_is_one_line_naming_the_others(tmp_path: Path) -> None:
    config = _file(tmp_path)
    result = CliRunner().invoke(app, ["--config", str(config), "--context", "qa", "config", "view"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: no context 'qa' in {config} (contexts: staging, prod); "
        "see `aml-console config get-contexts`"
    )
    no_current = _file(tmp_path, TWO_CONTEXTS.replace('current_context = "staging"\n', ""))
    with pytest.raises(ConfigError, match="no context chosen .contexts: staging, prod"):
        load_settings(no_current)
    bad = _file(tmp_path, '[contexts."../../etc"]\nenvironment = "x"\n')
    with pytest.raises(ConfigError, match="names a folder"):
        load_settings(bad)


def test_a_file_without_contexts_is_one_context_named_after_its_environment(
    tmp_path: Path,
) -> None:
    config = _file(tmp_path, 'environment = "eu-prod"\nread_only = true\n')
    settings = load_settings(config)
    assert settings.context == "eu-prod" and settings.read_only
    assert settings.run_dir.name == "eu-prod"
    with pytest.raises(ConfigError, match="no context 'prod'"):
        load_settings(config, "prod")


def test_invalid_values_name_the_context(tmp_path: Path) -> None:
    config = _file(tmp_path, TWO_CONTEXTS + "[contexts.prod.locks]\nlease_s = -1\n")
    with pytest.raises(ConfigError, match=r"\(context prod\): invalid configuration: locks"):
        load_settings(config, "prod")
    assert load_settings(config, "staging").locks.lease_s > 0


def test_lookup_order_flag_then_env_then_user_file_then_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built_in = load_settings()
    assert built_in.context == "lab" and built_in.config_path is not None
    assert built_in.config_path.name == "lab.toml" and built_in.redis.url.endswith(":16379/0")
    user = tmp_path / "config-home" / "aml-console" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('environment = "from-user"\n')
    assert load_settings().context == "from-user"
    env_file = _file(tmp_path, 'environment = "from-env"\n')
    monkeypatch.setenv("CONSOLE_CONFIG", str(env_file))
    assert load_settings().context == "from-env"
    flag = tmp_path / "flag.toml"
    flag.write_text('environment = "from-flag"\n')
    assert load_settings(flag).context == "from-flag"


def test_config_init_then_contexts_from_the_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["config", "init"])
    assert result.exit_code == 0, result.output
    written = tmp_path / "config-home" / "aml-console" / "config.toml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert written.read_bytes() == (REPO / "configs" / "config-template.toml").read_bytes()
    again = runner.invoke(app, ["config", "init"])
    assert again.exit_code == 1 and "exists; pass --force" in again.output

    listed = json.loads(runner.invoke(app, ["config", "get-contexts", "-o", "json"]).output)
    assert [(c["name"], c["current"]) for c in listed] == [("lab", True)]

    # A second context, added by hand under the comments, then switched to.
    with written.open("a") as fh:
        fh.write('\n[contexts.staging]\nenvironment = "staging"\n')
    result = runner.invoke(app, ["config", "use-context", "staging"])
    assert result.exit_code == 0, result.output
    text = written.read_text()
    assert 'current_context = "staging"' in text and "# A production context" in text
    assert runner.invoke(app, ["config", "current-context"]).output.strip() == "staging"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    missing = runner.invoke(app, ["config", "use-context", "nope"])
    assert missing.exit_code == 1 and "contexts: lab, staging" in missing.output
    view = json.loads(
        runner.invoke(app, ["--context", "lab", "config", "view", "-o", "json"]).output
    )
    assert view["context"] == "lab" and view["environment"] == "lab"


def test_use_context_without_a_file_says_what_to_do() -> None:
    result = CliRunner().invoke(app, ["config", "use-context", "lab"])
    assert result.exit_code == 1
    assert result.output.strip().endswith("run `config init`")


def test_a_user_runbook_overrides_the_shipped_one_and_says_so(tmp_path: Path) -> None:
    user_dir = tmp_path / "config-home" / "aml-console" / "runbooks"
    user_dir.mkdir(parents=True)
    shipped = (REPO / "runbooks" / "block-client.yaml").read_text()
    (user_dir / "block-client.yaml").write_text(
        shipped.replace("title: Block a client", "title: Block a client (ours)")
    )
    context_dir = tmp_path / "team-runbooks"
    context_dir.mkdir()
    (context_dir / "team-block.yaml").write_text(
        shipped.replace("name: block-client", "name: team-block")
    )
    config = _file(tmp_path, f'environment = "lab"\nrunbook_dirs = ["{context_dir}"]\n')
    result = CliRunner().invoke(app, ["--config", str(config), "runbook", "list", "-o", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["block-client"]["source"] == "user"
    assert rows["block-client"]["title"] == "Block a client (ours)"
    assert rows["rollback-model"]["source"] == "shipped"
    assert rows["team-block"]["source"] == str(context_dir)
    shown = CliRunner().invoke(app, ["--config", str(config), "runbook", "show", "block-client"])
    assert "(ours)" in shown.output


def test_from_an_empty_directory_nothing_lands_in_it(tmp_path: Path) -> None:
    """The installed script, run from a directory of its own: the shipped runbooks and drills
    are found, and neither they nor state are written into the working directory."""
    empty = tmp_path / "cwd"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSOLE_")}
    script = [sys.executable, "-m", "console"]
    for args in (["runbook", "list"], ["drill", "list"], ["config", "init"], ["audit", "tail"]):
        done = subprocess.run(
            [*script, *args], cwd=empty, env=env, capture_output=True, text=True, timeout=60
        )
        assert "Traceback" not in done.stderr, done.stderr
        if args[0] == "runbook":
            assert "block-client" in done.stdout and "shipped" in done.stdout
        if args[0] == "drill":
            assert done.returncode == 0 and "extraction" in done.stdout, done.stdout
    assert list(empty.iterdir()) == []
    assert (tmp_path / "config-home" / "aml-console" / "config.toml").is_file()


def test_config_view_and_doctor_never_show_credentials_in_urls(tmp_path: Path) -> None:
    """Secrets are SecretStr fields, and also the userinfo of any URL: the Redis password of
    redis://:pw@host, a proxy's, a sample store's s3://key:secret@bucket."""
    config = _file(
        tmp_path,
        'environment = "lab"\n'
        '[redis]\nurl = "redis://:REDIS-canary@127.0.0.1:9/0"\n'
        '[prometheus]\nurl = "https://oncall:PROM-canary@127.0.0.1:9"\n'
        'proxy_url = "http://user:PROXY-canary@127.0.0.1:3128"\n'
        '[samples]\npath = "s3://AKIA:S3-canary@bucket/samples"\n',
    )
    runner = CliRunner()
    view = runner.invoke(app, ["--config", str(config), "config", "view", "-o", "json"])
    assert view.exit_code == 0, view.output
    assert "canary" not in view.output
    assert json.loads(view.output)["redis"]["url"] == "redis://***@127.0.0.1:9/0"
    doctor = runner.invoke(app, ["--config", str(config), "doctor", "-o", "json", "--timeout", "2"])
    assert "canary" not in doctor.output and "s3://***@bucket" in doctor.output


def test_context_names_and_unsafe_config_files(tmp_path: Path) -> None:
    newline = _file(tmp_path, '[contexts."prod\\n"]\nenvironment = "prod"\n')
    with pytest.raises(ConfigError, match="names a folder"):
        load_settings(newline)
    shared = _file(tmp_path, 'environment = "lab"\n')
    shared.chmod(0o666)
    with pytest.raises(ConfigError, match="writable by others"):
        load_settings(shared)
    shared.chmod(0o644)
    assert load_settings(shared).context == "lab"


def test_use_context_writes_through_a_linked_config(tmp_path: Path) -> None:
    """A dotfile manager's link stays a link: the file it points at is the one rewritten."""
    real = tmp_path / "dotfiles" / "aml.toml"
    real.parent.mkdir()
    real.write_text(TWO_CONTEXTS)
    link = tmp_path / "config-home" / "aml-console" / "config.toml"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    result = CliRunner().invoke(app, ["config", "use-context", "prod"])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and 'current_context = "prod"' in real.read_text()
