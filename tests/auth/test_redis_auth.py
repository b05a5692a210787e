"""Redis with authentication on, from the CLI: an ACL user or requirepass, and TLS (rediss://,
a CA the test makes, a client certificate), on a real redis-server started per test.

With the right credentials a runbook run blocks the client and is audited; with wrong or
missing ones, or without the CA, the run stops before it changes anything with one line
saying why. No password ever shows in the output, the audit log or the run state.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from redis_auth_support import (
    USER,
    AuthRedis,
    TlsFiles,
    console_config,
    files_under,
    make_tls_files,
    running_redis,
)
from support import cli_env, run_cli

from console.adapters.backends import Backends
from console.adapters.policy_decisions import PolicyDecider
from console.config import load_settings

CLIENT = "acme-scraper-7"
BLOCK_KEY = f"aml:policy:block:{CLIENT}"


def block(config: Path, env: dict[str, str] | None = None) -> Any:
    return run_cli(
        [
            "--config",
            str(config),
            "runbook",
            "run",
            "block-client",
            "-p",
            f"client={CLIENT}",
            "-p",
            "ttl=30m",
            "-p",
            "reason=extraction suspected",
            "--yes",
            "-o",
            "json",
        ],
        env if env is not None else cli_env(config),
    )


def audit_records(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "run" / "audit" / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_nowhere(secrets_: list[str], result: Any, tmp_path: Path) -> None:
    """No secret in stdout, stderr, the audit log or any file of the run dir."""
    for secret in secrets_:
        assert secret not in result.stdout and secret not in result.stderr
        for path, data in files_under(tmp_path / "run"):
            assert secret.encode() not in data, f"{secret!r} written to {path}"


def assert_refused_and_nothing_applied(result: Any, server: AuthRedis, tmp_path: Path) -> str:
    """Exit 1 with one line on stderr; no block, no lease, no applied step. The line."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    admin = server.admin()
    assert admin.exists(BLOCK_KEY) == 0
    assert admin.keys("aml:*") == []
    applied = [r for r in audit_records(tmp_path) if r["kind"] == "step-outcome"]
    assert applied == []
    return lines[0]


def tls_toml(tls: TlsFiles, *, ca: bool = True, client_cert: bool = True) -> str:
    lines = ["[redis.tls_config]"]
    if ca:
        lines.append(f'ca_file = "{tls.ca_file}"')
    if client_cert:
        lines += [f'cert_file = "{tls.client_cert}"', f'key_file = "{tls.client_key}"']
    return "\n".join(lines)


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "pki")


@pytest.fixture
def mtls_redis(tmp_path: Path, tls_files: TlsFiles) -> Any:
    with running_redis(tmp_path / "redis", tls=tls_files, client_certs=True) as server:
        yield server


@pytest.fixture
def plain_redis(tmp_path: Path) -> Any:
    with running_redis(tmp_path / "redis") as server:
        yield server


def test_acl_user_over_mutual_tls_blocks_and_audits(
    tmp_path: Path, mtls_redis: AuthRedis, tls_files: TlsFiles
) -> None:
    """rediss://, the test's CA, a client certificate, an ACL user whose password is in a file:
    the run blocks the client, its records reach the audit log and the Redis mirror stream
    (the audit service's own client), and the lab gateway's enforcer sees the block."""
    password_file = tmp_path / "redis.pw"
    password_file.write_text(mtls_redis.user_password + "\n")
    redis_toml = f'username = "{USER}"\npassword_file = "{password_file}"\n' + tls_toml(tls_files)
    config = console_config(tmp_path, mtls_redis, redis_toml, mirror=True)

    result = block(config)

    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)["run"]
    assert run["status"] == "succeeded"
    admin = mtls_redis.admin()
    stored = json.loads(admin.get(BLOCK_KEY))
    assert stored["reason"] == "extraction suspected" and stored["run_id"] == run["run_id"]
    records = audit_records(tmp_path)
    assert [(r["kind"], r["result"]) for r in records] == [
        ("run-intent", "planned"),
        ("step-intent", "planned"),
        ("step-outcome", "ok"),
        ("run-outcome", "succeeded"),
    ]
    assert admin.xlen("aml:audit") == len(records)
    assert_nowhere([mtls_redis.user_password, mtls_redis.admin_password], result, tmp_path)

    settings = load_settings(config)
    enforcer = PolicyDecider(
        settings.redis, "aml", cache_s=0.0, failure_mode="closed", default_qpm=None
    )

    async def decide() -> str:
        try:
            return (await enforcer.decide(CLIENT)).verdict
        finally:
            await enforcer.aclose()

    assert asyncio.run(decide()) == "blocked"


@pytest.mark.parametrize("where", ["env", "url"])
def test_requirepass_from_the_environment_or_the_url(
    tmp_path: Path, plain_redis: AuthRedis, where: str
) -> None:
    """The ``default`` user's password (requirepass), from CONSOLE_REDIS__PASSWORD or inside
    the URL (``redis://:pw@host``): the run applies, and the password shows nowhere."""
    config = console_config(tmp_path, plain_redis, "")
    env = cli_env(config)
    if where == "env":
        env["CONSOLE_REDIS__PASSWORD"] = plain_redis.admin_password
    else:
        url = plain_redis.url.replace("redis://", f"redis://:{plain_redis.admin_password}@")
        env["CONSOLE_REDIS__URL"] = url

    result = block(config, env)

    assert result.returncode == 0, result.stderr
    assert json.loads(plain_redis.admin().get(BLOCK_KEY))["client"] == CLIENT
    assert_nowhere([plain_redis.admin_password], result, tmp_path)


@pytest.mark.parametrize(
    ("password", "code"),
    [("wrong-password-123", "WRONGPASS"), (None, "NOAUTH")],
    ids=["wrong", "missing"],
)
def test_refused_credentials_are_one_line_and_apply_nothing(
    tmp_path: Path, mtls_redis: AuthRedis, tls_files: TlsFiles, password: str | None, code: str
) -> None:
    redis_toml = tls_toml(tls_files)
    if password is not None:
        redis_toml = f'username = "{USER}"\npassword = "{password}"\n' + redis_toml
    config = console_config(tmp_path, mtls_redis, redis_toml)

    result = block(config)

    line = assert_refused_and_nothing_applied(result, mtls_redis, tmp_path)
    assert f"redis at {mtls_redis.url} refused the credentials ({code}" in line
    assert_nowhere(
        [s for s in (password, mtls_redis.user_password, mtls_redis.admin_password) if s],
        result,
        tmp_path,
    )


def test_acl_user_without_permission_on_the_prefix_is_refused(
    tmp_path: Path, plain_redis: AuthRedis
) -> None:
    """The ACL user may only touch ``aml:*``: a console with another key prefix gets NOPERM
    as its own one-line error, and nothing is written."""
    redis_toml = (
        f'username = "{USER}"\npassword = "{plain_redis.user_password}"\nkey_prefix = "other"'
    )
    config = console_config(tmp_path, plain_redis, redis_toml)

    result = block(config)

    assert result.returncode == 1, result.stdout
    line = result.stderr.strip()
    assert "\n" not in line and "NOPERM" in line and f"redis at {plain_redis.url}" in line
    assert plain_redis.admin().keys("other:*") == []
    assert_nowhere([plain_redis.user_password], result, tmp_path)


def test_tls_without_the_ca_names_the_certificate_problem(
    tmp_path: Path, mtls_redis: AuthRedis, tls_files: TlsFiles
) -> None:
    """The server's certificate is signed by the test's CA, which the system does not trust."""
    redis_toml = f'username = "{USER}"\npassword = "{mtls_redis.user_password}"\n' + tls_toml(
        tls_files, ca=False
    )
    config = console_config(tmp_path, mtls_redis, redis_toml)

    result = block(config)

    line = assert_refused_and_nothing_applied(result, mtls_redis, tmp_path)
    assert f"redis at {mtls_redis.url}: TLS failed: certificate verify failed" in line
    assert "tls_config.ca_file" in line
    assert_nowhere([mtls_redis.user_password], result, tmp_path)


def test_mutual_tls_without_a_client_certificate_says_so(
    tmp_path: Path, mtls_redis: AuthRedis, tls_files: TlsFiles
) -> None:
    redis_toml = f'username = "{USER}"\npassword = "{mtls_redis.user_password}"\n' + tls_toml(
        tls_files, client_cert=False
    )
    config = console_config(tmp_path, mtls_redis, redis_toml)

    result = block(config)

    line = assert_refused_and_nothing_applied(result, mtls_redis, tmp_path)
    assert f"redis at {mtls_redis.url}: TLS failed" in line
    assert "tls_config.cert_file and key_file" in line


def test_insecure_skip_verify_connects_with_a_loud_warning(
    tmp_path: Path, mtls_redis: AuthRedis, tls_files: TlsFiles
) -> None:
    """No CA given, verification off: the run applies, and stderr says checks are off."""
    redis_toml = (
        f'username = "{USER}"\npassword = "{mtls_redis.user_password}"\n'
        + tls_toml(tls_files, ca=False)
        + "\ninsecure_skip_verify = true"
    )
    config = console_config(tmp_path, mtls_redis, redis_toml)

    result = block(config)

    assert result.returncode == 0, result.stderr
    assert mtls_redis.admin().exists(BLOCK_KEY) == 1
    assert f"TLS certificate checks are OFF for redis at {mtls_redis.url}" in result.stderr
    assert_nowhere([mtls_redis.user_password], result, tmp_path)


def test_a_ca_file_that_cannot_be_loaded_is_a_config_error(
    tmp_path: Path, mtls_redis: AuthRedis, tls_files: TlsFiles
) -> None:
    broken = tmp_path / "not-a-ca.pem"
    broken.write_text("not a certificate\n")
    redis_toml = f'password = "{mtls_redis.admin_password}"\n' + tls_toml(tls_files).replace(
        str(tls_files.ca_file), str(broken)
    )
    config = console_config(tmp_path, mtls_redis, redis_toml)

    result = block(config)

    line = assert_refused_and_nothing_applied(result, mtls_redis, tmp_path)
    assert f"redis tls_config.ca_file {broken}: cannot be loaded" in line
    assert_nowhere([mtls_redis.admin_password], result, tmp_path)


def test_plain_redis_url_to_a_tls_port_hints_at_rediss(
    tmp_path: Path, mtls_redis: AuthRedis
) -> None:
    config = console_config(tmp_path, mtls_redis, f'password = "{mtls_redis.admin_password}"')
    env = cli_env(config)
    env["CONSOLE_REDIS__URL"] = mtls_redis.url.replace("rediss://", "redis://")

    result = block(config, env)

    line = assert_refused_and_nothing_applied(result, mtls_redis, tmp_path)
    assert "rediss://" in line
    assert_nowhere([mtls_redis.admin_password], result, tmp_path)


@pytest.mark.parametrize(
    ("redis_toml", "problem"),
    [
        ('password = "a-secret-1"\npassword_file = "/nonexistent"', "not both"),
        ('[redis.tls_config]\nca_file = "/ca.pem"', "tls_config needs a rediss:// URL"),
    ],
    ids=["password-twice", "tls-on-redis-url"],
)
def test_contradicting_redis_settings_are_config_errors(
    tmp_path: Path, plain_redis: AuthRedis, redis_toml: str, problem: str
) -> None:
    config = console_config(tmp_path, plain_redis, redis_toml)

    result = block(config)

    assert result.returncode != 0
    assert problem in result.stderr and "redis" in result.stderr
    assert "a-secret-1" not in result.stderr + result.stdout
    assert plain_redis.admin().keys("aml:*") == []


def test_unreadable_password_file_is_one_line(tmp_path: Path, plain_redis: AuthRedis) -> None:
    missing = tmp_path / "no-such.pw"
    config = console_config(tmp_path, plain_redis, f'password_file = "{missing}"')

    result = block(config)

    assert result.returncode == 1
    assert result.stderr.strip() == result.stderr.strip().splitlines()[0]
    assert f"redis.password_file {missing}" in result.stderr
    assert plain_redis.admin().keys("aml:*") == []


async def test_backends_client_connects_as_the_acl_user(
    tmp_path: Path, mtls_redis: AuthRedis, tls_files: TlsFiles
) -> None:
    """The client views and runbooks get from Backends: the ACL user, over mutual TLS."""
    config = console_config(
        tmp_path,
        mtls_redis,
        f'username = "{USER}"\npassword = "{mtls_redis.user_password}"\n' + tls_toml(tls_files),
    )
    backends = Backends(load_settings(config))
    try:
        assert await backends.redis.acl_whoami() == USER
        assert await backends.policy.get_block(CLIENT) is None
    finally:
        await backends.aclose()
