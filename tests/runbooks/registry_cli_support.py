"""The registry as the promotion tests read it back over REST, and the CLI in process: the
aliases of a model, a version's robustness record removed. Import as
``from registry_cli_support import ...``."""

from __future__ import annotations

from typing import Any

import httpx
from runbook_support import Console
from typer.testing import CliRunner

from console.cli.main import app
from console.robustness import RECORD_TAG
from console.robustness_seal import SIGNATURE_TAG


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def aliases(console: Console, name: str) -> dict[str, str]:
    body = httpx.get(
        f"{console.settings.mlflow.url}/api/2.0/mlflow/registered-models/get",
        params={"name": name},
        timeout=10.0,
    ).json()
    return {a["alias"]: a["version"] for a in body["registered_model"].get("aliases", [])}


def forget(console: Console, name: str, version: str) -> None:
    """No record on the version (whatever a seeder may have written)."""
    for key in (RECORD_TAG, SIGNATURE_TAG):
        httpx.request(
            "DELETE",
            f"{console.settings.mlflow.url}/api/2.0/mlflow/model-versions/delete-tag",
            json={"name": name, "version": version, "key": key},
            timeout=10.0,
        )
