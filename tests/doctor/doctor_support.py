"""Helpers of the doctor tests: a config over the session lab with everything local (audit log,
key, stores) under the test's tmp_path, and running ``aml-console doctor -o json``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from support import SESSION_SERVICES, TEST_PORTS, cli_env, lab_config, run_cli, write_config

ENDPOINTS = [
    "prometheus",
    "alertmanager",
    "mlflow",
    "redis",
    "audit",
    "traces",
    "samples",
    "acl",
    "signing",
]
REPORT_KEYS = {"name", "url", "ok", "error", "latency_ms", "version", "checks"}
CHECK_KEYS = {"name", "ok", "detail", "hint"}


def doctor_config(
    tmp_path: Path,
    *,
    prometheus_url: str | None = None,
    alertmanager_url: str | None = None,
    redis_url: str | None = None,
    served: list[str] | None = None,
    key_prefix: str = "aml",
    models: str = "",
) -> Path:
    """A config over the session lab's services; the audit log, its key and the trace and
    sample stores are fresh under ``tmp_path`` (the stores exist, the log does not yet).
    ``models``: more lines of its ``[models]`` table (the signing keys)."""
    run_dir = tmp_path / "run"
    text = lab_config(run_dir, TEST_PORTS, services=SESSION_SERVICES)
    replacements = {
        f"http://127.0.0.1:{TEST_PORTS['prometheus']}": prometheus_url,
        f"http://127.0.0.1:{TEST_PORTS['alertmanager']}": alertmanager_url,
        f"redis://127.0.0.1:{TEST_PORTS['redis']}/0": redis_url,
    }
    for old, new in replacements.items():
        if new is not None:
            text = text.replace(f'"{old}"', json.dumps(new))
    text = text.replace("[redis]\n", f"[redis]\nkey_prefix = {json.dumps(key_prefix)}\n")
    for store in ("traces", "samples"):
        (tmp_path / store).mkdir(parents=True)
        text += f"\n[{store}]\npath = {json.dumps(str(tmp_path / store))}\n"
    text += f"\n[models]\nserved = {json.dumps(served or ['digits'])}\n{models}\n"
    secrets = run_dir / "secrets"
    secrets.mkdir(parents=True, mode=0o700)
    key = secrets / "audit.key"
    key.write_text("doctor-test-audit-key-0123456789\n")
    key.chmod(0o600)
    path = tmp_path / "config.toml"
    write_config(path, text)
    return path


def run_doctor(
    config: Path, *extra: str, after: bool = False
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """``aml-console [extra] doctor -o json`` (``after``: ``doctor -o json [extra]``): the
    process and its decoded report."""
    args = ["doctor", "-o", "json", *extra] if after else [*extra, "doctor", "-o", "json"]
    result = run_cli(args, cli_env(config))
    assert "Traceback" not in result.stderr, result.stderr
    return result, json.loads(result.stdout)


def by_name(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in reports}


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def failed_checks(reports: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["name"], c["name"]) for r in reports for c in r["checks"] if not c["ok"]]


def append_records(config: Path, count: int) -> Path:
    """``count`` real records (intent and outcome pairs) in the config's audit log; its path."""
    from console.audit import AuditEvent, AuditLog
    from console.config import load_settings

    settings = load_settings(config)
    log = AuditLog.from_settings(settings)
    for i in range(count):
        kind = "step-intent" if i % 2 == 0 else "step-outcome"
        log.append(
            AuditEvent(
                kind=kind,
                operator="alice",
                environment="test",
                run_id="doctor-run",
                runbook="block-client",
                step=f"s{i // 2}",
                action="policy.block",
                result="planned" if kind == "step-intent" else "ok",
            )
        )
    return settings.audit_path
