"""The layering of docs/architecture.md, checked on the source: TUI/CLI -> services -> adapters
-> foundation, the lab a harness that no service imports, Textual only in the TUI, no import
cycle, no module too big to read. Every import counts, also those inside functions and under
``TYPE_CHECKING``: a lazy import is still a dependency."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from import_graph import Import, cycles, imports, modules
from support import REPO

ROOT = REPO / "console"
FOUNDATION = {
    "console",
    "errors",
    "config",
    "config_fields",
    "config_files",
    "config_lab",
    "config_policy",
    "config_robustness",
    "config_signing",
    "robustness",
    "robustness_seal",
    "robustness_trust",
    "model_signing",
    "acl",
    "locations",
    "shipped",
    "durations",
    "safe_yaml",
    "model_artifacts",
    "urls",
    "private_files",
    "identity",
    "operator_identity",
    "endpoints",
    "detectors",
}
"""Shared by every layer; imports nothing above itself."""
ALLOWED: dict[str, set[str]] = {
    **{unit: FOUNDATION for unit in FOUNDATION},
    "adapters": FOUNDATION,
    "audit": FOUNDATION | {"adapters"},
    "runbooks": FOUNDATION | {"adapters", "audit"},
    "replay": FOUNDATION | {"adapters"},
    "evaluation": FOUNDATION | {"adapters"},
    "doctor": FOUNDATION | {"adapters", "audit"},
    "policy_endpoint": FOUNDATION | {"adapters"},
    "incidents": FOUNDATION | {"adapters", "audit"},
    "drills": FOUNDATION | {"adapters", "audit", "runbooks", "lab", "incidents"},
    "views": FOUNDATION
    | {"adapters", "audit", "runbooks", "replay", "drills", "incidents", "evaluation"},
    "lab": FOUNDATION | {"adapters", "evaluation"},
    "tui": FOUNDATION
    | {"adapters", "audit", "runbooks", "replay", "drills", "views", "incidents", "evaluation"},
    "cli": FOUNDATION
    | {
        "adapters",
        "audit",
        "runbooks",
        "replay",
        "drills",
        "incidents",
        "evaluation",
        "views",
        "doctor",
        "policy_endpoint",
        "lab",
        "tui",
    },
    "__main__": {"cli"},
}
"""Which units a unit may import: a unit is a subpackage of console (``runbooks``) or a
top-level module (``errors``). The same table is in docs/architecture.md, "Layers"."""
LAB_IMPORTERS = (
    "console.cli.lab",
    "console.cli.lab_attacks",
    "console.cli.demo",
    "console.drills.attacks",
)
"""Outside the lab itself, only the lab's commands and the drills' attack bridge use it."""
MAX_LINES = 480


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "console"


def layer_violations(edges: list[Import]) -> list[str]:
    found = []
    for edge in edges:
        source, target = unit(edge.importer), unit(edge.imported)
        if source != target and target not in ALLOWED.get(source, set()):
            found.append(f"{edge} ({source} may not import {target})")
    return found


def lab_violations(edges: list[Import]) -> list[str]:
    return [
        str(edge)
        for edge in edges
        if unit(edge.imported) == "lab"
        and unit(edge.importer) != "lab"
        and edge.importer not in LAB_IMPORTERS
    ]


def textual_importers(root: Path, package: str) -> list[str]:
    """Modules outside ``<package>.tui`` with an ``import textual...`` anywhere in them."""
    import ast

    found = []
    for name, path in modules(root, package).items():
        if name == f"{package}.tui" or name.startswith(f"{package}.tui."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            if any(n == "textual" or n.startswith(("textual.", "textual_")) for n in names):
                found.append(f"{name}:{node.lineno}")
    return found


@pytest.fixture(scope="module")
def edges() -> list[Import]:
    found = imports(ROOT, "console")
    # The reader must see the imports it is checking, or every check passes vacuously.
    assert any(
        e.importer == "console.cli.demo" and e.imported == "console.lab.services" for e in found
    )
    return found


def test_every_unit_has_a_place_in_the_layers() -> None:
    units = {unit(name) for name in modules(ROOT, "console")}
    assert units <= set(ALLOWED), f"add {sorted(units - set(ALLOWED))} to ALLOWED and the docs"


def test_no_import_points_up_a_layer(edges: list[Import]) -> None:
    assert layer_violations(edges) == []


def test_only_the_lab_commands_and_the_attack_bridge_import_the_lab(edges: list[Import]) -> None:
    assert lab_violations(edges) == []


def test_no_import_cycle(edges: list[Import]) -> None:
    assert cycles(edges) == []


def test_no_module_outside_the_tui_imports_textual() -> None:
    assert textual_importers(ROOT, "console") == []


def test_no_module_is_too_long_to_read() -> None:
    long = {
        name: lines
        for name, path in modules(ROOT, "console").items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these along their jobs (at most {MAX_LINES} lines): {long}"


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """A planted tree with one of each fault: each check names it."""
    pkg = tmp_path / "console"
    for folder in ("runbooks", "lab", "adapters", "views", "drills"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "runbooks" / "engine.py").write_text(
        "def f():\n    from console.lab.process import start_ticks\n"
    )
    (pkg / "lab" / "process.py").write_text("")
    (pkg / "adapters" / "http.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from console.views import x\n"
    )
    (pkg / "drills" / "chart.py").write_text("from console.drills import report\n")
    (pkg / "drills" / "report.py").write_text("from . import chart\nimport textual.app\n")
    planted = imports(pkg, "console")
    assert lab_violations(planted) == ["console.runbooks.engine:2 imports console.lab.process"]
    assert [v.split(" (")[0] for v in layer_violations(planted)] == [
        "console.adapters.http:3 imports console.views",
        "console.runbooks.engine:2 imports console.lab.process",
    ]
    assert cycles(planted) == [["console.drills.chart", "console.drills.report"]]
    assert textual_importers(pkg, "console") == ["console.drills.report:2"]


def test_importing_every_service_loads_no_textual() -> None:
    """At run time too: the CLI's services never pay for a UI toolkit (``--help`` ~0.3 s)."""
    names = sorted(
        name
        for name in modules(ROOT, "console")
        if unit(name) not in ("tui", "cli", "__main__", "lab")
    )
    assert "console.drills.runner" in names and "console.views.clients" in names
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.')"
        " or m.startswith('console.tui')))\n"
    )
    got = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "[]", got.stdout


def test_the_layer_diagram_names_every_unit_and_module() -> None:
    """docs/architecture.md, "Layers": every unit, and every module of the adapters, audit and
    runbooks packages, is in the diagram, so the diagram cannot drift from the tree."""
    text = (REPO / "docs" / "architecture.md").read_text()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    words = set(re.findall(r"[a-z_]+", block))
    units = {unit(name) for name in modules(ROOT, "console")} - {"console", "__main__"}
    assert units <= words, f"not in the diagram: {sorted(units - words)}"
    listed = {
        name.rsplit(".", 1)[1]
        for name in modules(ROOT, "console")
        if name.count(".") == 2 and unit(name) in ("adapters", "audit", "runbooks")
    }
    assert listed <= words, f"not in the diagram: {sorted(listed - words)}"
