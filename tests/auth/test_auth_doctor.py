"""`doctor` on endpoints with authentication on: the right credentials pass every check that
depends on them (and say what is sent, never the secret); a refused one is "not
authenticated" with the server's status and a hint, while the other endpoints still report."""

from __future__ import annotations

import json
from pathlib import Path

from auth_support import AuthServer, auth_console
from support import LabHandle, run_cli


def _doctor(env: dict[str, str]) -> tuple[int, dict[str, dict[str, object]], str]:
    done = run_cli(["doctor", "-o", "json"], env)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, {r["name"]: r for r in json.loads(done.stdout)}, done.stdout


def _check(report: dict[str, object], name: str) -> dict[str, object]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return next(c for c in checks if c["name"] == name)


def test_doctor_tells_refused_credentials_from_good_ones(
    lab: LabHandle,
    auth_prometheus: AuthServer,
    auth_alertmanager: AuthServer,
    auth_mlflow: AuthServer,
    tmp_path: Path,
) -> None:
    console = auth_console(
        lab,
        tmp_path,
        {
            "prometheus": auth_prometheus.section(auth="wrong"),
            "alertmanager": auth_alertmanager.section(),
            "mlflow": auth_mlflow.section(auth="none"),
        },
    )
    code, reports, text = _doctor(console.env)
    assert code == 1
    prometheus = reports["prometheus"]
    assert prometheus["ok"] is False
    assert "not authenticated" in str(prometheus["error"]) and "(401)" in str(prometheus["error"])
    assert _check(prometheus, "authenticated")["hint"]
    alertmanager = reports["alertmanager"]
    assert _check(alertmanager, "authenticated")["ok"] is True
    assert "basic" in str(_check(alertmanager, "authenticated")["detail"]).lower()
    assert _check(alertmanager, "version")["ok"] is True
    mlflow = reports["mlflow"]
    assert mlflow["ok"] is False and "no credentials configured" in str(mlflow["error"])
    for server in (auth_prometheus, auth_alertmanager, auth_mlflow):
        assert server.password not in text


def test_insecure_skip_verify_connects_but_fails_the_check(
    lab: LabHandle, auth_alertmanager: AuthServer, tmp_path: Path
) -> None:
    section = auth_alertmanager.section(ca=False, extra={})
    section["tls_config"] = {"insecure_skip_verify": True}
    console = auth_console(lab, tmp_path, {"alertmanager": section})
    _, reports, _ = _doctor(console.env)
    alertmanager = reports["alertmanager"]
    assert _check(alertmanager, "reachable")["ok"] is True
    assert _check(alertmanager, "authenticated")["ok"] is True
    assert alertmanager["ok"] is False
    failed = [c for c in alertmanager["checks"] if not c["ok"]]  # type: ignore[union-attr]
    assert any("insecure_skip_verify" in str(c["detail"]) + str(c["hint"]) for c in failed)
