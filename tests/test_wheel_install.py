"""The console as a user installs it: a wheel built from this tree, installed into a fresh
virtualenv, run from an empty directory. The shipped runbooks, drills, rules and lab context
come from the package, state goes under the XDG dirs, and nothing lands in the working
directory.

The virtualenv sees the machine's site-packages for the dependencies (installing pandas and
Textual again would cost a minute and prove nothing about this package); the console itself
is the wheel's copy, which the test checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support import REPO

SOURCES = ("pyproject.toml", "README.md", "console", "runbooks", "configs", "docs")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The virtualenv's bin/ with the wheel installed."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:  # a copy: an in-tree build would leave build/ in the checkout
        path = REPO / name
        if path.is_dir():
            shutil.copytree(
                path, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(path, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(root / "dist"), str(src)], check=True)
    (wheel,) = (root / "dist").glob("aml_console-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for shipped in (
        "console/_shipped/runbooks/block-client.yaml",
        "console/_shipped/drills/extraction.yaml",
        "console/_shipped/prometheus/aml-alerts.yml",
        "console/_shipped/prometheus/tests/extraction.yml",
        "console/_shipped/lab.toml",
        "console/_shipped/config-template.toml",
        "console/_shipped/gateways/nginx.conf",
        "console/_shipped/gateways/envoy-ext-authz.yaml",
    ):
        assert shipped in names, f"{shipped} is not in the wheel"
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    venv_pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*venv_pip, "install", "--no-deps", str(wheel)], check=True)
    return venv / "bin"


def _run(bin_dir: Path, cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSOLE_")}
    env |= {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    }
    return subprocess.run(
        [str(bin_dir / "aml-console"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_installed_console_works_from_an_empty_directory(installed: Path, tmp_path: Path):
    cwd, home = tmp_path / "somewhere", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    where = subprocess.run(
        [str(installed / "python"), "-c", "import console; print(console.__file__)"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(installed.parent)), f"not the wheel's console: {where}"

    version = _run(installed, cwd, home, "--version")
    assert version.returncode == 0 and version.stdout.startswith("aml-console ")

    listed = _run(installed, cwd, home, "runbook", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    runbooks = {row["name"]: row for row in json.loads(listed.stdout)}
    assert {"block-client", "rollback-model", "contain-extraction"} <= set(runbooks)
    assert all(row["valid"] and row["source"] == "shipped" for row in runbooks.values())
    assert runbooks["block-client"]["path"].startswith(str(installed.parent))

    drills = _run(installed, cwd, home, "drill", "list")
    assert drills.returncode == 0 and "extraction" in drills.stdout, drills.stderr

    init = _run(installed, cwd, home, "config", "init")
    assert init.returncode == 0, init.stderr
    assert (home / ".config" / "aml-console" / "config.toml").is_file()
    contexts = _run(installed, cwd, home, "config", "get-contexts", "-o", "json")
    assert [c["name"] for c in json.loads(contexts.stdout)] == ["lab"]
    view = json.loads(_run(installed, cwd, home, "config", "view", "-o", "json").stdout)
    assert view["run_dir"] == str(home / ".local" / "state" / "aml-console" / "contexts" / "lab")

    status = _run(installed, cwd, home, "lab", "status", "-o", "json")
    assert status.returncode in (0, 1) and "Traceback" not in status.stderr, status.stderr
    # Against a context whose backends are not there: one report per endpoint, no traceback.
    nowhere = home / "nowhere.toml"
    nowhere.write_text(
        'environment = "nowhere"\n[prometheus]\nurl = "http://127.0.0.1:9"\n'
        '[alertmanager]\nurl = "http://127.0.0.1:9"\n[mlflow]\nurl = "http://127.0.0.1:9"\n'
        '[redis]\nurl = "redis://127.0.0.1:9/0"\n'
    )
    doctor = _run(installed, cwd, home, "--config", str(nowhere), "doctor", "-o", "json")
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr, doctor.stderr
    reports = {r["name"]: r for r in json.loads(doctor.stdout)}
    assert not reports["prometheus"]["ok"] and "unreachable" in reports["prometheus"]["error"]
    alerts = _run(installed, cwd, home, "--config", str(nowhere), "get", "alerts", "-o", "json")
    assert alerts.returncode == 1 and alerts.stderr.count("\n") == 1, alerts.stderr
    assert list(cwd.iterdir()) == [], "the console wrote into the working directory"

    exported = _run(installed, cwd, home, "rules", "export", "rules")
    assert exported.returncode == 0, exported.stderr
    assert {p.name for p in (cwd / "rules").glob("*.yml")} == {
        "aml-alerts.yml",
        "aml-recording.yml",
    }
    assert (cwd / "rules" / "tests" / "extraction.yml").is_file()
