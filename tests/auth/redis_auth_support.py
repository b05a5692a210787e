"""A real redis-server with authentication on, for tests/auth/test_redis_auth.py.

Each server runs in the test's ``tmp_path`` on a free port: the ``default`` user has a
password (``--requirepass``) and full access (the tests' admin connection), and an ACL user
``oncall`` may touch only keys and channels under ``aml:``. With ``tls``, the server listens
only on its TLS port (``--port 0 --tls-port``) with certificates from a CA that ``trustme``
makes, and with ``client_certs`` it requires a client certificate (mutual TLS).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from support import REPO, free_port, unavailable

USER = "oncall"
KEY_PATTERN = "aml:*"
START_DEADLINE_S = 30.0
"""How long a starting server may take to answer before the test gives up (not a measure)."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA, the server's certificate and key, a client certificate and key."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass(frozen=True)
class AuthRedis:
    port: int
    url: str
    """``redis://127.0.0.1:PORT/0`` or ``rediss://...`` (no credentials in it)."""
    admin_password: str
    """The ``default`` user's (requirepass)."""
    user_password: str
    """The ACL user ``oncall``'s."""
    tls: TlsFiles | None
    log: Path

    def admin(self) -> redis.Redis:
        """A connection as ``default`` (full access), strings decoded."""
        options: dict[str, object] = {}
        if self.tls is not None:
            options = {
                "ssl_ca_certs": str(self.tls.ca_file),
                "ssl_certfile": str(self.tls.client_cert),
                "ssl_keyfile": str(self.tls.client_key),
            }
        return redis.Redis.from_url(
            self.url,
            password=self.admin_password,
            decode_responses=True,
            socket_timeout=5,
            **options,  # type: ignore[arg-type]
        )


def make_tls_files(folder: Path) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate."""
    try:
        import trustme
    except ImportError:
        unavailable("trustme is not installed (pip install -e '.[test]')")
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("aml-console-tests@example.invalid")
    files = TlsFiles(
        ca_file=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
    )
    ca.cert_pem.write_to_path(str(files.ca_file))
    server.private_key_pem.write_to_path(str(files.server_key))
    client.private_key_pem.write_to_path(str(files.client_key))
    for leaf, path in ((server, files.server_cert), (client, files.client_cert)):
        path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    for key in (files.server_key, files.client_key):
        key.chmod(0o600)
    return files


@contextmanager
def running_redis(
    folder: Path, *, tls: TlsFiles | None = None, client_certs: bool = False
) -> Iterator[AuthRedis]:
    """A redis-server with a requirepass and the ACL user, stopped on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server not found: apt-get install -y redis-server")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    admin_password = f"adm-{secrets.token_hex(12)}"
    user_password = f"usr-{secrets.token_hex(12)}"
    argv = [binary, "--bind", "127.0.0.1", "--dir", str(folder), "--daemonize", "no"]
    argv += ["--save", "", "--appendonly", "no", "--logfile", str(folder / "redis.log")]
    argv += ["--requirepass", admin_password]
    # The ACL user: its own password, keys and channels under aml: only, every command.
    argv += ["--user", USER, "on", f">{user_password}", f"~{KEY_PATTERN}", "&aml:*", "+@all"]
    if tls is None:
        argv += ["--port", str(port)]
    else:
        argv += ["--port", "0", "--tls-port", str(port)]
        argv += ["--tls-cert-file", str(tls.server_cert), "--tls-key-file", str(tls.server_key)]
        argv += ["--tls-ca-cert-file", str(tls.ca_file)]
        argv += ["--tls-auth-clients", "yes" if client_certs else "no"]
    scheme = "rediss" if tls is not None else "redis"
    server = AuthRedis(
        port=port,
        url=f"{scheme}://127.0.0.1:{port}/0",
        admin_password=admin_password,
        user_password=user_password,
        tls=tls,
        log=folder / "redis.log",
    )
    process = subprocess.Popen(
        argv, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_ready(process, server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[str], server: AuthRedis) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            log = server.log.read_text() if server.log.exists() else ""
            reason = (stderr + log).strip().splitlines()[-3:]
            unavailable(f"redis-server exited at start ({process.returncode}): {reason}")
        try:
            if server.admin().ping():
                return
        except redis.RedisError:
            time.sleep(0.05)
    unavailable(f"redis-server did not answer on port {server.port}")


def console_config(
    folder: Path,
    server: AuthRedis,
    redis_toml: str,
    *,
    mirror: bool = False,
) -> Path:
    """A console config for ``server``: ``redis_toml`` is the body of its ``[redis]`` table
    (after ``url``), the rest keeps everything under ``folder``."""
    run_dir = folder / "run"
    key_file = folder / "audit.key"
    key_file.write_text(secrets.token_hex(16))
    key_file.chmod(0o600)
    mirror_toml = '\nmirror = "redis"\nmirror_stream = "aml:audit"\n' if mirror else "\n"
    text = f"""\
environment = "auth-test"
operator = "oncall-tester"
run_dir = "{run_dir}"
runbook_dirs = ["{REPO / "runbooks"}"]

[redis]
url = "{server.url}"
{redis_toml}

[audit]
path = "{run_dir / "audit" / "audit.jsonl"}"
hmac_key_file = "{key_file}"{mirror_toml}
[locks]
lease_s = 30
"""
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def files_under(folder: Path) -> Iterator[tuple[Path, bytes]]:
    """Every regular file under ``folder`` and its bytes."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()
