"""NGINX in front of model servers, asking the policy endpoint first (``auth_request``): the
shipped snippet (``docs/gateways/nginx.conf``, package data) rendered into a complete config,
and NGINX run as a plain process of the caller's on loopback.

Everything NGINX writes lives under one private prefix (0700): the config, its pid file, error
and access logs, and the temporary files of request and response bodies. No ``user`` directive
is needed: a master that is not root runs its workers as itself. Run as root, the config names
root as the workers' user, since the default (nobody) could not write temporary files in a
private prefix.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from console import shipped
from console.errors import LabError
from console.lab import process
from console.private_files import private_dir, write_private

NGINX_BINARY = "nginx"
"""Module-level so a test can point it at something that does not exist."""
APT_HINT = "`apt-get install -y --no-install-recommends nginx`"
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
UPSTREAMS_LINE = re.compile(r"^(\s*)\{\{\s*upstreams\s*\}\}\s*$")
HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")
# A prefix path goes into the config between double quotes, and access_log expands variables.
UNSAFE_IN_PATH = re.compile(r"[\"'\\$;{}\x00-\x1f]")
START_TIMEOUT_S = 10.0


def template_path() -> Path:
    return shipped.gateways_dir() / "nginx.conf"


@dataclass(frozen=True)
class NginxLayout:
    """Where one NGINX keeps its files, all under ``prefix``."""

    prefix: Path

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def output_log(self) -> Path:
        """NGINX's own stdout and stderr (start-up errors before the error log is open)."""
        return self.prefix / "nginx.out"

    @property
    def temp(self) -> Path:
        return self.prefix / "temp"


def host_port(value: str, what: str) -> str:
    """``HOST:PORT`` checked, for a ``server`` line of an upstream block."""
    found = HOST_PORT.fullmatch(value.strip())
    if found is None or not 0 < int(found.group(2)) < 65536:
        raise LabError(f"nginx: {what} {value[:80]!r} is not HOST:PORT")
    return f"{found.group(1)}:{int(found.group(2))}"


def policy_address(policy_url: str) -> str:
    """``HOST:PORT`` of the policy endpoint's ``http://HOST:PORT`` (no path: the snippet adds
    ``/v1/decision/nginx``)."""
    parts = urlsplit(policy_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise LabError(f"nginx: policy url {policy_url[:80]!r} is not http://HOST:PORT")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host_port(f"{host}:{port}", "policy url")


def _quoted_path(path: Path) -> str:
    text = str(path)
    if UNSAFE_IN_PATH.search(text):
        raise LabError(f"nginx: the path {text[:80]!r} has a character NGINX configs cannot hold")
    return f'"{text}"'


def fill_snippet(
    template: str, *, listen: str, upstreams: Sequence[str], policy: str, access_log: str
) -> str:
    """The snippet with its placeholders filled; comment lines are left as they are."""
    if not upstreams:
        raise LabError("nginx: no upstream to proxy to")
    values = {"listen": listen, "policy": policy, "access_log": access_log}
    lines: list[str] = []
    for line in template.splitlines():
        if line.lstrip().startswith("#"):
            lines.append(line)
            continue
        block = UPSTREAMS_LINE.fullmatch(line)
        if block is not None:
            lines += [f"{block.group(1)}server {u};" for u in upstreams]
            continue
        for name in PLACEHOLDER.findall(line):
            if name not in values:
                raise LabError(f"nginx: the template has an unknown placeholder {{{{ {name} }}}}")
        lines.append(PLACEHOLDER.sub(lambda m: values[m.group(1)], line))
    return "\n".join(lines) + "\n"


def render_nginx_conf(listen: int, upstreams: list[str], policy_url: str, prefix: Path) -> str:
    """A complete ``nginx.conf``: the shipped snippet (``docs/gateways/nginx.conf``) listening
    on 127.0.0.1:``listen``, load-balancing ``upstreams`` (``HOST:PORT`` each) and asking
    ``policy_url`` (``http://HOST:PORT``), inside a main context whose pid file, logs and
    temporary files are under ``prefix``."""
    if not 0 < listen < 65536:
        raise LabError(f"nginx: listen port {listen} is out of range")
    layout = NginxLayout(prefix)
    snippet = fill_snippet(
        template_path().read_text(encoding="utf-8"),
        listen=f"127.0.0.1:{listen}",
        upstreams=[host_port(u, "upstream") for u in upstreams],
        policy=policy_address(policy_url),
        access_log=_quoted_path(layout.access_log),
    )
    user = f"user {pwd.getpwuid(0).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {_quoted_path(layout.temp / kind)};\n" for kind in TEMP_KINDS
    )
    body = "".join(f"    {line}\n" if line else "\n" for line in snippet.splitlines())
    return (
        f"# Rendered by console/lab/nginx.py from {template_path().name} (docs/gateways/).\n"
        f"{user}"
        "worker_processes 1;\n"
        f"pid {_quoted_path(layout.pid_file)};\n"
        f"error_log {_quoted_path(layout.error_log)} warn;\n"
        "events {\n    worker_connections 1024;\n}\n"
        "http {\n"
        f"{temp}"
        f"{body}"
        "}\n"
    )


def write_nginx_conf(
    prefix: Path, listen: int, upstreams: list[str], policy_url: str
) -> NginxLayout:
    """The prefix (private) with its temporary folders and the rendered config (0600)."""
    layout = NginxLayout(private_dir(prefix))
    for kind in TEMP_KINDS:
        private_dir(layout.temp / kind)
    write_private(layout.conf, render_nginx_conf(listen, upstreams, policy_url, layout.prefix))
    return layout


def nginx_binary() -> str:
    """The nginx executable: on PATH, or in /usr/sbin (not on a normal user's PATH)."""
    found = shutil.which(NGINX_BINARY) or shutil.which(NGINX_BINARY, path="/usr/sbin:/sbin")
    if found is None:
        raise LabError(f"{NGINX_BINARY} not found: install it with {APT_HINT}")
    return found


def nginx_argv(layout: NginxLayout, *extra: str) -> list[str]:
    """NGINX in the foreground on ``layout``'s config (``-e``: its own error log from the first
    line on, before the config is read, instead of the package's /var/log/nginx)."""
    return [
        nginx_binary(),
        "-p",
        f"{layout.prefix}/",
        "-c",
        str(layout.conf),
        "-e",
        str(layout.error_log),
        *extra,
    ]


def check_nginx_conf(layout: NginxLayout) -> None:
    """``nginx -t`` of the config: a one-line LabError with NGINX's own reason if it is bad."""
    done = subprocess.run(
        nginx_argv(layout, "-t", "-q"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "[emerg]" in ln), lines[-1] if lines else "")
        raise LabError(f"nginx: {layout.conf} is not valid: {reason[:300]}")


@dataclass(frozen=True)
class RunningNginx:
    layout: NginxLayout
    port: int
    record: process.PidRecord

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_nginx(layout: NginxLayout, port: int, timeout_s: float = START_TIMEOUT_S) -> RunningNginx:
    """Check the config, start NGINX in its own session, and wait until it accepts
    connections on 127.0.0.1:``port``; a LabError with its log's tail if it does not."""
    check_nginx_conf(layout)
    if process.port_open(port):
        raise LabError(f"nginx: 127.0.0.1:{port} is already taken by another program")
    pid = process.spawn(
        nginx_argv(layout, "-g", "daemon off;"),
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        cwd=layout.prefix,
        log_path=layout.output_log,
    )
    ticks = process.start_ticks(pid)
    running = RunningNginx(layout, port, process.PidRecord(pid, ticks or -1, port))
    deadline = time.monotonic() + timeout_s
    while not process.port_open(port):
        code = process.exit_code(pid)
        if code is not None or time.monotonic() > deadline:
            stop_nginx(running)
            why = f"exited with {code}" if code is not None else f"not up after {timeout_s:.0f} s"
            tail = process.log_tail(layout.error_log, lines=3)
            if tail in ("(no log)", "(empty log)"):
                tail = process.log_tail(layout.output_log, lines=3)
            raise LabError(f"nginx {why}; {layout.error_log}: {tail}")
        time.sleep(0.05)
    return running


def stop_nginx(running: RunningNginx) -> None:
    """SIGTERM (NGINX's fast shutdown) to its process group, SIGKILL if it lingers."""
    process.stop(running.record)


@contextmanager
def nginx_running(
    prefix: Path, port: int, upstreams: list[str], policy_url: str
) -> Iterator[RunningNginx]:
    """Render, start, and at the end stop NGINX on 127.0.0.1:``port``."""
    running = start_nginx(write_nginx_conf(prefix, port, upstreams, policy_url), port)
    try:
        yield running
    finally:
        stop_nginx(running)
