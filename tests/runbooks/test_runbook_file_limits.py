"""A runbook file past the parser's limits is refused with a clear line, not a crash."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from console.cli.main import app


def test_deep_nesting_is_refused_before_the_stack_is(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 20000 + "]" * 20000 + "\n")
    result = CliRunner().invoke(app, ["runbook", "validate", str(deep)])
    assert result.exit_code == 1
    assert "nested deeper than 32 levels" in result.output
