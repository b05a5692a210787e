"""A custom runbook cannot move an alias with a templated http.request (the registry's origin,
or its API's path on any host): the robustness gate is in promote-model, and MLflow on loopback
is also an allowed host of http_action by default."""

from __future__ import annotations

from pathlib import Path

from registry_cli_support import aliases, cli
from runbook_support import Console
from test_champion_moves import SEEDED, one_line_error

from console.lab.seed import SeededModel

HTTP_PROMOTE = """\
name: http-promote
title: Move champion by hand
target: "model:{{{{ params.model }}}}"
parameters:
  model: {{type: string, required: true}}
steps:
  - id: move
    action: http.request
    with:
      method: POST
      url: "{url}/api/2.0/mlflow/registered-models/alias"
      json: {{name: "{{{{ params.model }}}}", alias: champion, version: "1"}}
"""


def test_http_request_to_the_registry_is_refused_and_moves_nothing(
    console: Console, seeded_model: SeededModel, tmp_path: Path
) -> None:
    name = seeded_model.name
    mlflow = console.settings.mlflow.url.rstrip("/")
    for url in (
        mlflow,  # the registry's own origin
        mlflow.replace("127.0.0.1", "localhost"),  # the same origin by another name
        "http://127.0.0.1:9/x/..//API/2.0/mlflow",  # its API path on another allowed host
    ):
        custom = tmp_path / "http-promote.yaml"
        custom.write_text(HTTP_PROMOTE.format(url=url))
        refused = one_line_error(cli("runbook", "run", str(custom), "-p", f"model={name}", "--yes"))
        assert "http.request does not call the model registry: use promote-model" in refused
        assert aliases(console, name) == SEEDED
