"""Real Prometheus, Alertmanager and MLflow with authentication switched on, one of each per
xdist worker, on free ports under a temporary directory.

Prometheus and Alertmanager get a ``--web.config.file`` with TLS (a certificate signed by a CA
this session makes with ``trustme``) and basic auth (a bcrypt hash); MLflow runs its
``basic-auth`` app (``mlflow[auth]``) with an admin from ``MLFLOW_AUTH_CONFIG_PATH``. A
binary or package that is missing skips the tests here, and fails them under CI=true.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_support import AuthServer, Pki, write_secret
from support import free_port, unavailable

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
START_TIMEOUT_S = 60.0
MLFLOW_START_TIMEOUT_S = 120.0


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    try:
        import trustme
    except ImportError:
        unavailable("the trustme package (pip install -e '.[test]')")
    home = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("oncall@aml-console")
    other = trustme.CA()  # a CA that signed nothing of ours
    paths = {
        "ca": home / "ca.pem",
        "other_ca": home / "other-ca.pem",
        "server_cert": home / "server.pem",
        "server_key": home / "server.key",
        "client_cert": home / "client.pem",
        "client_key": home / "client.key",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    other.cert_pem.write_to_path(str(paths["other_ca"]))
    server.private_key_pem.write_to_path(str(paths["server_key"]))
    client.private_key_pem.write_to_path(str(paths["client_key"]))
    paths["server_cert"].write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    paths["client_cert"].write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    for key in ("server_key", "client_key"):
        paths[key].chmod(0o600)
    return Pki(**paths)


def _bcrypt(password: str) -> str:
    try:
        import bcrypt
    except ImportError:
        unavailable("the bcrypt package (pip install -e '.[test]')")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def _web_config(home: Path, pki: Pki, username: str, password: str) -> Path:
    path = home / "web.yml"
    path.write_text(
        "tls_server_config:\n"
        f"  cert_file: {pki.server_cert}\n"
        f"  key_file: {pki.server_key}\n"
        "basic_auth_users:\n"
        f"  {username}: '{_bcrypt(password)}'\n"
    )
    return path


def _wait_ready(
    server: AuthServer, process: subprocess.Popen[bytes], path: str, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    verify = ssl.create_default_context(cafile=str(server.ca_file)) if server.ca_file else True
    with httpx.Client(verify=verify, trust_env=False, timeout=2) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = (server.home / "server.log").read_text(errors="replace")[-1500:]
                pytest.fail(f"{server.name} exited at start: {log}", pytrace=False)
            try:
                answer = http.get(server.url + path, auth=(server.username, server.password))
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    pytest.fail(f"{server.name} did not answer {path} within {timeout_s:g} s", pytrace=False)


def _run(
    server: AuthServer,
    argv: list[str],
    ready_path: str,
    env: dict[str, str] | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> Iterator[AuthServer]:
    log = (server.home / "server.log").open("wb")
    process = subprocess.Popen(
        argv, cwd=server.home, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        _wait_ready(server, process, ready_path, timeout_s)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def auth_prometheus(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """Prometheus behind TLS and basic auth, scraping itself through both (so ``up`` and
    ``prometheus_build_info`` are real data)."""
    if not os.access(PROMETHEUS, os.X_OK):
        unavailable(f"{PROMETHEUS} (Debian package prometheus)")
    home = tmp_path_factory.mktemp("auth-prometheus")
    port = free_port()
    server = AuthServer(
        "prometheus",
        f"https://127.0.0.1:{port}",
        home,
        "oncall",
        "prom-Pa55-CANARY-3f9a1c",
        write_secret(home / "password", "prom-Pa55-CANARY-3f9a1c"),
        pki.ca,
    )
    config = home / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: self\n    scheme: https\n"
        f"    basic_auth: {{username: oncall, password_file: {server.password_file}}}\n"
        f"    tls_config: {{ca_file: {pki.ca}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    argv = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.config.file={_web_config(home, pki, server.username, server.password)}",
    ]
    yield from _run(server, argv, "/-/ready")


@pytest.fixture(scope="session")
def auth_alertmanager(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    if not os.access(ALERTMANAGER, os.X_OK):
        unavailable(f"{ALERTMANAGER} (Debian package prometheus-alertmanager)")
    home = tmp_path_factory.mktemp("auth-alertmanager")
    port = free_port()
    password = "am-Pa55-CANARY-8b21d4"
    server = AuthServer(
        "alertmanager",
        f"https://127.0.0.1:{port}",
        home,
        "oncall",
        password,
        write_secret(home / "password", password),
        pki.ca,
    )
    config = home / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    argv = [
        ALERTMANAGER,
        f"--config.file={config}",
        f"--storage.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        f"--web.config.file={_web_config(home, pki, server.username, password)}",
    ]
    yield from _run(server, argv, "/-/ready")


@pytest.fixture(scope="session")
def auth_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """MLflow's tracking server with its basic-auth app; the admin is the only user."""
    try:
        import flask_wtf  # noqa: F401 - what mlflow's basic-auth app needs (mlflow[auth])
        import mlflow  # noqa: F401
    except ImportError as exc:
        unavailable(f"mlflow with its auth extra (pip install 'mlflow[auth]'): {exc}")
    home = tmp_path_factory.mktemp("auth-mlflow")
    port = free_port()
    password = "mlflow-Pa55-CANARY-51c0e7"
    server = AuthServer(
        "mlflow",
        f"http://127.0.0.1:{port}",
        home,
        "admin",
        password,
        write_secret(home / "password", password),
        None,
    )
    ini = home / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{home / 'auth.db'}\n"
        "admin_username = admin\n"
        f"admin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CONSOLE_"))},
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "aml-console-auth-tests",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(home / "artifacts"),
    ]
    ready = "/api/2.0/mlflow/registered-models/search?max_results=1"
    yield from _run(server, argv, ready, env, MLFLOW_START_TIMEOUT_S)
