"""Replay through a real Open Inference (V2) server: the project's gateway, started by the
launcher (the third-party one, MLServer, is in test_replay_mlserver.py). The gateway serves one
version, its champion: moving the alias lets the same server answer for each version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from replay_stack import ADVERSARIAL, CLEAN, OLD, UNLABELLED, V2Gateway
from replay_support import digits, invoke, record, write_store
from support import REPO, LabHandle, cli_env, free_port


def _env(lab: LabHandle, gw: V2Gateway) -> dict[str, str]:
    return {**cli_env(lab.config_path), "CONSOLE_SAMPLES__PATH": str(gw.store.root)}


def _json(lab: LabHandle, gw: V2Gateway, *args: str) -> Any:
    got = invoke(["replay", "--model", gw.model.name, "-o", "json", *args], _env(lab, gw))
    assert got.exit_code == 0, got.stderr
    return got.json()


def _serving(gw: V2Gateway) -> list[str]:
    with httpx.Client(base_url=gw.url, trust_env=False, timeout=5) as http:
        return [str(v) for v in http.get(f"/v2/models/{gw.model.name}").json()["versions"]]


def _same(remote: dict[str, Any], local: dict[str, Any], version: str) -> None:
    assert [s["sample_id"] for s in remote["samples"]] == [s["sample_id"] for s in local["samples"]]
    for key, tolerance in (("confidences", 1e-6), ("squeeze_scores", 1e-5)):
        np.testing.assert_allclose(
            [s[key][version] for s in remote["samples"]],
            [s[key][version] for s in local["samples"]],
            atol=tolerance,  # the gateway rounds probabilities to 7 decimals
        )
    assert [s["predictions"][version] for s in remote["samples"]] == [
        s["predictions"][version] for s in local["samples"]
    ]


def test_the_endpoint_gives_the_local_predictions_for_each_version(
    lab: LabHandle, v2_gateway: V2Gateway
) -> None:
    gw, model = v2_gateway, v2_gateway.model
    assert _serving(gw) == [model.champion]
    remote = _json(lab, gw, "--versions", "champion", "--endpoint", gw.url, "--batch-size", "64")
    assert remote["backend"] == f"V2 endpoint {gw.url}"
    assert len(remote["samples"]) == CLEAN + ADVERSARIAL + UNLABELLED + OLD
    _same(remote, _json(lab, gw, "--versions", "champion"), model.champion)

    # A version the server does not serve: its own 404, one line.
    got = invoke(
        ["replay", "--model", model.name, "--versions", "champion,previous", "--endpoint", gw.url],
        _env(lab, gw),
    )
    assert got.exit_code == 1 and "Traceback" not in got.stderr
    assert f"version '{model.previous}' is not served (serving {model.champion})" in got.stderr
    assert "HTTP 404" in got.stderr and len(got.stderr.strip().splitlines()) == 2  # header+error

    # Serve the previous version (move the alias), and replay it through the endpoint.
    with httpx.Client(trust_env=False, timeout=10) as http:
        http.post(
            f"{lab.settings.mlflow.url}/api/2.0/mlflow/registered-models/alias",
            json={"name": model.name, "alias": "champion", "version": model.previous},
        ).raise_for_status()
    deadline = time.monotonic() + 20
    while _serving(gw) != [model.previous] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _serving(gw) == [model.previous]
    assert model.previous is not None
    remote = _json(lab, gw, "--versions", model.previous, "--endpoint", gw.url)
    _same(remote, _json(lab, gw, "--versions", model.previous), model.previous)


def test_an_endpoint_that_is_down_is_one_line(lab: LabHandle, v2_gateway: V2Gateway) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    got = invoke(
        ["replay", "--model", v2_gateway.model.name, "--endpoint", url, "--timeout", "2"],
        _env(lab, v2_gateway),
    )
    assert got.exit_code == 1 and got.stdout == ""
    error = got.stderr.strip().splitlines()[-1]
    assert error.startswith("error: v2 endpoint POST") and "cannot connect" in error
    assert f"{url}/v2/models/{v2_gateway.model.name}/versions/" in error


def test_ctrl_c_cancels_cleanly(lab: LabHandle, v2_gateway: V2Gateway, tmp_path: Path) -> None:
    """SIGINT mid-replay (3000 samples, one per request through the gateway): exit 130, one
    line saying how far it got."""
    total = 3000
    now = datetime.now(UTC)
    rows = digits().x_test
    write_store(
        tmp_path,
        [
            record(i, now - timedelta(seconds=i), rows[i % len(rows)], model=v2_gateway.model.name)
            for i in range(total)
        ],
    )
    args = [
        sys.executable,
        "-m",
        "console",
        "replay",
        "--model",
        v2_gateway.model.name,
        "--versions",
        "champion",
        "--endpoint",
        v2_gateway.url,
        "--batch-size",
        "1",
        "--limit",
        str(total),
        "-o",
        "json",
    ]
    proc = subprocess.Popen(
        args,
        env={**_env(lab, v2_gateway), "CONSOLE_SAMPLES__PATH": str(tmp_path)},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        header = proc.stderr.readline()
        assert header.startswith("replaying "), header
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stdout == "" and "Traceback" not in stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("error: replay cancelled after ") and line.endswith(
        f"of {total} samples"
    )
    done = int(line.split("after ")[1].split(" of")[0])
    assert 0 < done < total
