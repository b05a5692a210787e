"""Helpers for the gateway tests: an isolated gateway config against the session lab's Redis and
MLflow (own run dir, own Redis key prefix, own port, own model), and V2 request bodies."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support import REPO, free_port

from console.config import Settings, load_settings

AUDIT_KEY = "gateway-test-audit-key-" + "x" * 16


@dataclass
class GatewayEnv:
    settings: Settings
    env: dict[str, str]
    """os.environ plus the CONSOLE_* variables of this gateway (for the CLI and the launcher)."""
    run_dir: Path

    @property
    def url(self) -> str:
        return self.settings.gateway.url

    @property
    def traces_dir(self) -> Path:
        return Path(self.settings.traces.path)

    @property
    def samples_dir(self) -> Path:
        return Path(self.settings.samples.path)


def gateway_env(lab: Any, tmp_path: Path, model: str, **gateway: Any) -> dict[str, str]:
    run_dir = tmp_path / "run"
    env = {
        "CONSOLE_CONFIG": str(lab.config_path),
        "CONSOLE_RUN_DIR": str(run_dir),
        "CONSOLE_REDIS__KEY_PREFIX": f"gw{secrets.token_hex(4)}",
        "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": AUDIT_KEY,
        "CONSOLE_OPERATOR": "gateway-tester",
        "CONSOLE_RUNBOOK_DIRS": json.dumps([str(REPO / "runbooks")]),
        "CONSOLE_TRACES__PATH": str(run_dir / "traces"),
        "CONSOLE_SAMPLES__PATH": str(run_dir / "samples"),
        "CONSOLE_GATEWAY__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_MODELS__SERVED": json.dumps([model]),
        "CONSOLE_GATEWAY__ALIAS_POLL_S": "0.3",
        "CONSOLE_GATEWAY__SAMPLE_FRACTION": "0",
    }
    for key, value in gateway.items():
        section = "DETECTORS" if key in ("flag_threshold", "squeezers") else "GATEWAY"
        env[f"CONSOLE_{section}__{key.upper()}"] = str(value)
    return env


def make_gateway_env(
    lab: Any, tmp_path: Path, model: str, setenv: Callable[[str, str], None], **gateway: Any
) -> GatewayEnv:
    env = gateway_env(lab, tmp_path, model, **gateway)
    for key, value in env.items():
        setenv(key, value)
    return GatewayEnv(load_settings(), {**os.environ, **env}, tmp_path / "run")


def digits(n: int = 50) -> Any:
    from sklearn.datasets import load_digits

    x, _ = load_digits(return_X_y=True)
    return x[-n:]


def body(rows: Any, **extra: Any) -> dict[str, Any]:
    rows = [list(map(float, r)) for r in rows]
    tensor = {"name": "input", "shape": [len(rows), 64], "datatype": "FP32", "data": rows}
    return {"inputs": [tensor], **extra}


def wait_until(
    check: Callable[[], bool], timeout_s: float, interval_s: float = 0.02
) -> float | None:
    """Seconds until ``check()`` held, or None if it did not within ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if check():
            return time.monotonic() - start
        time.sleep(interval_s)
    return None


def read_jsonl(directory: Path, pattern: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted(directory.glob(pattern)):
        for line in path.read_text().splitlines():
            if line.strip():
                found.append(json.loads(line))
    return found


def spans(directory: Path) -> list[dict[str, Any]]:
    """Every span in the OTLP JSON-lines files, with its attributes as a plain dict."""
    out = []
    for record in read_jsonl(directory, "traces-*.jsonl"):
        for rs in record["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    attrs = {}
                    for a in span["attributes"]:
                        attrs[a["key"]] = next(iter(a["value"].values()))
                    out.append({**span, "attrs": attrs})
    return out


def metric_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name)]


def infer(
    client: httpx.Client, model: str, rows: Any, who: str | None = "alice", **headers: str
) -> httpx.Response:
    sent: Mapping[str, str] = {**({"X-Client-Id": who} if who else {}), **headers}
    return client.post(f"/v2/models/{model}/infer", json=body(rows), headers=dict(sent))
