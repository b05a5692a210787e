"""``aml-console rules export DIR``: the shipped rule files and their promtool tests, copied
so that the real promtool checks them and runs their tests on the copy, from another working
directory; files 0644; a different file in the way is left alone unless ``--force``."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import unavailable
from typer.testing import CliRunner

from console.adapters.rule_files import RULES_DIR
from console.cli.main import app


def export(*args: str) -> Any:
    return CliRunner().invoke(app, ["rules", "export", *args])


def shipped() -> list[Path]:
    """The shipped files, relative to the rules folder."""
    found = sorted(RULES_DIR.glob("*.yml")) + sorted((RULES_DIR / "tests").glob("*.yml"))
    return [p.relative_to(RULES_DIR) for p in found]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable("promtool is not installed (Debian package prometheus)")
    return found


def test_the_exported_rules_pass_promtool_check_and_their_tests(tmp_path: Path) -> None:
    target = tmp_path / "ruler" / "aml"
    result = export(str(target), "-o", "json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    written = json.loads(result.stdout)
    assert {Path(w["path"]).relative_to(target) for w in written} == set(shipped())
    assert {w["status"] for w in written} == {"written"}
    assert any(p.parts[0] == "tests" for p in shipped()) and any(
        p.parent == Path(".") for p in shipped()
    )
    for rel in shipped():
        copy = target / rel
        assert copy.read_bytes() == (RULES_DIR / rel).read_bytes()
        assert stat.S_IMODE(copy.stat().st_mode) == 0o644

    # From the folder above the copy, by relative paths, as a user would.
    rules = [str(Path("ruler/aml") / p) for p in shipped() if p.parent == Path(".")]
    tests = [str(Path("ruler/aml") / p) for p in shipped() if p.parts[0] == "tests"]
    for command in (["check", "rules", *rules], ["test", "rules", *tests]):
        proc = subprocess.run(
            [promtool(), *command], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_a_changed_file_is_kept_unless_force_and_an_equal_one_is_unchanged(
    tmp_path: Path,
) -> None:
    assert export(str(tmp_path)).exit_code == 0
    mine = tmp_path / "aml-alerts.yml"
    mine.write_text("# my own edit\n")
    new_test = tmp_path / "tests" / shipped()[-1].name
    new_test.unlink()  # a file that is missing is written again even without --force

    refused = export(str(tmp_path))
    assert refused.exit_code == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--force" in lines[0]
    assert "aml-alerts.yml" in lines[0]
    assert mine.read_text() == "# my own edit\n" and not new_test.exists()  # nothing written

    forced = export(str(tmp_path), "--force", "-o", "json")
    assert forced.exit_code == 0, forced.stderr
    status = {Path(w["path"]).name: w["status"] for w in json.loads(forced.stdout)}
    assert status["aml-alerts.yml"] == "overwritten"
    assert status[new_test.name] == "written"
    assert status["aml-recording.yml"] == "unchanged"
    assert mine.read_bytes() == (RULES_DIR / "aml-alerts.yml").read_bytes()

    again = export(str(tmp_path))
    assert again.exit_code == 0 and "unchanged" in again.stdout and "promtool" in again.stdout


@pytest.mark.parametrize("in_the_way", ["file", "dir"])
def test_something_in_the_way_is_one_error_line(tmp_path: Path, in_the_way: str) -> None:
    if in_the_way == "file":
        target = tmp_path / "rules"
        target.write_text("not a folder")
    else:
        target = tmp_path
        (tmp_path / "aml-alerts.yml").mkdir()
    result = export(str(target))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
