"""The ``aml-console`` command line: one module per command group."""

from __future__ import annotations

from console.cli.main import app

__all__ = ["app"]
