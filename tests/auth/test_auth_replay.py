"""Replay against an MLflow behind its basic-auth app: the lab seeds the model with the
credentials MLflow's own client reads (MLFLOW_TRACKING_USERNAME/PASSWORD), replay reads the
registry and downloads the artifacts with the context's ``[mlflow] basic_auth``, and wrong
credentials are one line with nothing replayed."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from auth_support import AuthServer, auth_console
from support import REPO, LabHandle, run_cli

from console.lab.seed import seed_model

sys.path.insert(0, str(REPO / "tests" / "replay"))  # the replay tests' sample store
from replay_stack import fill_store  # noqa: E402


@pytest.fixture(scope="module")
def auth_model(auth_mlflow: AuthServer) -> str:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_USERNAME", auth_mlflow.username)
        env.setenv("MLFLOW_TRACKING_PASSWORD", auth_mlflow.password)
        return seed_model(auth_mlflow.url, f"digits-auth-{uuid.uuid4().hex[:8]}").name


def test_replay_reads_an_authenticated_registry(
    lab: LabHandle, auth_mlflow: AuthServer, auth_model: str, tmp_path: Path
) -> None:
    store = fill_store(tmp_path / "samples", auth_model)
    console = auth_console(lab, tmp_path, {"mlflow": auth_mlflow.section()})
    env = {**console.env, "CONSOLE_SAMPLES__PATH": str(store.root)}
    done = run_cli(["replay", "--model", auth_model, "-o", "json"], env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [v["label"] for v in report["versions"]] == ["champion (2)", "previous (1)"]
    assert len(report["samples"]) == len(store.records)
    assert all(set(s["predictions"]) == {"2", "1"} for s in report["samples"])
    assert auth_mlflow.password not in done.stdout + done.stderr

    wrong = auth_console(lab, tmp_path / "wrong", {"mlflow": auth_mlflow.section(auth="wrong")})
    refused = run_cli(
        ["replay", "--model", auth_model, "-o", "json"],
        {**wrong.env, "CONSOLE_SAMPLES__PATH": str(store.root)},
    )
    assert refused.returncode == 1 and refused.stdout == ""
    (line,) = refused.stderr.strip().splitlines()
    assert "mlflow at http://127.0.0.1:" in line and "refused the credentials (401)" in line
