"""Only console/tui imports Textual: the services (views, runbooks, replay, drills) are the same
code under the CLI and the TUI, and `aml-console --help` must not pay for a UI toolkit."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

from support import REPO

import console

SERVICE_PACKAGES = ("console.views", "console.runbooks", "console.replay", "console.drills",
                    "console.audit", "console.adapters", "console.cli")  # fmt: skip


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(console.__path__, "console."):
        if info.name.startswith(SERVICE_PACKAGES) and not info.name.startswith("console.tui"):
            names.append(info.name)
    return sorted(names)


def test_no_service_module_imports_textual() -> None:
    modules = _modules()
    assert "console.drills.runner" in modules and "console.views.clients" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.')"
        " or m.startswith('console.tui')))\n"
    )
    got = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=False, timeout=120)  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "[]", got.stdout
