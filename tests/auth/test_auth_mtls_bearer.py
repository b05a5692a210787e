"""The two credentials the other auth tests can only show being sent, here accepted by real
servers: a client certificate that an Alertmanager with ``client_auth_type:
RequireAndVerifyClientCert`` demands (mTLS), and a bearer token that an NGINX in front of the
lab's Alertmanager checks (neither Prometheus' nor Alertmanager's web config takes tokens).
Both through the CLI (`get alerts`), with the wrong or missing credential one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_support import AuthServer, Pki, auth_console, write_secret
from support import LabHandle, free_port, run_cli, unavailable

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
TOKEN = "bearer-CANARY-7d21e0"


@pytest.fixture(scope="module")
def mtls_alertmanager(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    if not os.access(ALERTMANAGER, os.X_OK):
        unavailable(f"{ALERTMANAGER} (Debian package prometheus-alertmanager)")
    home = tmp_path_factory.mktemp("mtls-alertmanager")
    port, cluster = free_port(), free_port()
    server = AuthServer(
        "alertmanager", f"https://127.0.0.1:{port}", home, "", "", home / "unused", pki.ca
    )
    web = home / "web.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert_file: {pki.server_cert}\n"
        f"  key_file: {pki.server_key}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {pki.ca}\n"
    )
    (home / "am.yml").write_text("route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n")
    argv = [
        ALERTMANAGER,
        f"--config.file={home / 'am.yml'}",
        f"--storage.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--cluster.listen-address=127.0.0.1:{cluster}",
        f"--web.config.file={web}",
    ]
    yield from _run_with_cert(server, argv, pki)


def _run_with_cert(server: AuthServer, argv: list[str], pki: Pki) -> Iterator[AuthServer]:
    """Start ``argv``; readiness is polled with the client certificate, since the server
    refuses anything else."""
    import ssl
    import time

    import httpx

    log = (server.home / "server.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(verify=context, trust_env=False, timeout=2) as http:
            while True:
                assert process.poll() is None, (server.home / "server.log").read_text()[-800:]
                try:
                    if http.get(server.url + "/-/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "alertmanager with mTLS did not start"
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def bearer_front(lab: LabHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """NGINX on a free port that answers 401 unless ``Authorization: Bearer TOKEN``, and
    proxies to the session lab's Alertmanager otherwise."""
    if not os.access(NGINX, os.X_OK):
        unavailable(f"{NGINX} (Debian package nginx)")
    home = tmp_path_factory.mktemp("bearer-nginx")
    port = free_port()
    (home / "logs").mkdir()
    conf = home / "nginx.conf"
    conf.write_text(
        f"pid {home / 'nginx.pid'};\nerror_log {home / 'logs' / 'error.log'};\n"
        "events {}\nhttp {\n"
        f"  access_log off;\n  client_body_temp_path {home / 'body'};\n"
        f"  proxy_temp_path {home / 'proxy'};\n"
        "  server {\n"
        f"    listen 127.0.0.1:{port};\n"
        "    location / {\n"
        f'      if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}\n'
        f"      proxy_pass {lab.settings.alertmanager.url};\n"
        "    }\n  }\n}\n"
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(home), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(home / "logs" / "stderr.log").open("wb"),
        start_new_session=True,
    )
    import time

    import httpx

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, (home / "logs" / "stderr.log").read_text()
        try:
            httpx.get(url, timeout=1, trust_env=False)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _alerts(console_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(["get", "alerts", "-o", "json"], console_env)


def test_a_client_certificate_is_what_an_mtls_alertmanager_accepts(
    lab: LabHandle, mtls_alertmanager: AuthServer, pki: Pki, tmp_path: Path
) -> None:
    tls = {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert)}
    tls["key_file"] = str(pki.client_key)
    console = auth_console(
        lab, tmp_path, {"alertmanager": {"url": mtls_alertmanager.url, "tls_config": tls}}
    )
    done = _alerts(console.env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    without = auth_console(
        lab,
        tmp_path / "without",
        {"alertmanager": {"url": mtls_alertmanager.url, "tls_config": {"ca_file": str(pki.ca)}}},
    )
    refused = _alerts(without.env)
    assert refused.returncode == 1 and refused.stdout == ""
    (line,) = refused.stderr.strip().splitlines()
    assert "alertmanager" in line and "tls_config.cert_file" in line, line


def test_a_bearer_token_from_its_file_is_what_the_front_accepts(
    lab: LabHandle, bearer_front: str, tmp_path: Path
) -> None:
    token_file = write_secret(tmp_path / "token", TOKEN)
    good = {"url": bearer_front, "authorization": {"credentials_file": str(token_file)}}
    console = auth_console(lab, tmp_path, {"alertmanager": good})
    done = _alerts(console.env)
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), list)
    wrong_file = write_secret(tmp_path / "wrong-token", "not-the-token")
    wrong = {"url": bearer_front, "authorization": {"credentials_file": str(wrong_file)}}
    refused = _alerts(auth_console(lab, tmp_path / "wrong", {"alertmanager": wrong}).env)
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert f"alertmanager at {bearer_front}" in line and "refused the credentials (401)" in line
    for output in (done, refused):
        assert TOKEN not in output.stdout + output.stderr
