"""``aml-console doctor`` against the real session lab: the report's shape, a backend that is
down or hangs (the others still reported), a served model the registry lacks, Redis' write
probe (and read-only mode, which must not write), credentials refused, and a tampered audit
log."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from doctor_support import (
    CHECK_KEYS,
    ENDPOINTS,
    REPORT_KEYS,
    append_records,
    by_name,
    checks,
    doctor_config,
    failed_checks,
    run_doctor,
)
from support import TEST_PORTS, LabHandle, free_port

from console.lab.seed import SeededModel

REDIS = f"redis://127.0.0.1:{TEST_PORTS['redis']}/0"


def test_a_healthy_lab_reports_every_endpoint_in_the_documented_shape(
    lab_prometheus: LabHandle, tmp_path: Path
) -> None:
    """Every endpoint, in order, each entry and each check with exactly the documented keys;
    everything the session lab provides passes. Its Prometheus scrapes no gateway, so the
    metric contract is the one check allowed to fail here (tests/doctor/test_doctor_metrics.py
    feeds it the series), and the exit code follows the checks."""
    result, reports = run_doctor(doctor_config(tmp_path))
    assert [r["name"] for r in reports] == ENDPOINTS
    for report in reports:
        assert set(report) == REPORT_KEYS
        assert all(set(c) == CHECK_KEYS for c in report["checks"])
        assert report["ok"] == all(c["ok"] for c in report["checks"])
    found = by_name(reports)
    assert [c["name"] for c in found["prometheus"]["checks"]] == [
        "reachable",
        "authenticated",
        "version",
        "metric contract",
        "rules loaded",
    ]
    assert [c["name"] for c in found["redis"]["checks"]] == [
        "reachable",
        "authenticated",
        "version",
        "writes under aml:",
    ]
    assert [c["name"] for c in found["audit"]["checks"]] == ["key", "verifies", "file modes"]
    assert set(failed_checks(reports)) <= {("prometheus", "metric contract")}
    assert checks(found["prometheus"])["rules loaded"]["ok"]
    assert "AMLExtractionSuspected" in checks(found["prometheus"])["rules loaded"]["detail"]
    for name in ("prometheus", "alertmanager", "mlflow", "redis"):
        assert found[name]["version"], name
        assert found[name]["latency_ms"] is not None and found[name]["latency_ms"] >= 0
    assert checks(found["alertmanager"])["receiver"]["detail"] == "null"
    assert checks(found["mlflow"])["model digits"]["ok"]
    assert result.returncode == (0 if all(r["ok"] for r in reports) else 1)


def test_a_closed_port_is_unreachable_with_a_hint_and_the_rest_is_still_checked(
    lab: LabHandle, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result, reports = run_doctor(doctor_config(tmp_path, alertmanager_url=closed))
    assert result.returncode == 1
    found = by_name(reports)
    am = found["alertmanager"]
    assert am["ok"] is False and am["error"].startswith("unreachable")
    assert am["url"] == closed
    [reachable] = am["checks"]
    assert reachable["name"] == "reachable" and not reachable["ok"]
    assert "[alertmanager].url" in reachable["hint"] and "lab up" in reachable["hint"]
    assert found["mlflow"]["ok"] and found["redis"]["ok"] and found["audit"]["ok"]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A real TCP listener that accepts connections and never answers (a hung backend: no
    real server here can be made to hang on demand)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        sock.close()


def test_a_hung_backend_fails_on_its_own_timeout_while_the_others_pass(
    lab: LabHandle, tmp_path: Path, silent_server: str
) -> None:
    """The hung Alertmanager times out after its own ``timeout_s``; the others, checked at
    the same time, are reported as they are."""
    config = doctor_config(tmp_path, alertmanager_url=silent_server)
    text = config.read_text().replace("[alertmanager]\n", "[alertmanager]\ntimeout_s = 1\n")
    config.write_text(text)
    result, reports = run_doctor(config)
    found = by_name(reports)
    assert result.returncode == 1
    am = found["alertmanager"]
    assert am["ok"] is False and am["error"].startswith("unreachable")
    assert "timed out" in am["error"]
    assert "[alertmanager].url" in am["checks"][0]["hint"]
    assert found["mlflow"]["ok"] and found["redis"]["ok"]

    # A deadline (``--timeout``) under the call's own timeout: the endpoint's whole check stops.
    config.write_text(text.replace("timeout_s = 1\n", "timeout_s = 30\n", 1))
    result, reports = run_doctor(config, "--timeout", "0.5", after=True)
    assert [r["name"] for r in reports] == ENDPOINTS
    am = by_name(reports)["alertmanager"]
    assert am["error"] == "unreachable: no answer within 0.5 s"
    assert result.returncode == 1


def test_a_served_model_the_registry_lacks_is_named(
    lab: LabHandle, tmp_path: Path, seeded_model: SeededModel
) -> None:
    missing = f"no-such-model-{uuid.uuid4().hex[:8]}"
    config = doctor_config(tmp_path, served=[seeded_model.name, missing])
    result, reports = run_doctor(config)
    assert result.returncode == 1
    mlflow = checks(by_name(reports)["mlflow"])
    assert mlflow[f"model {seeded_model.name}"]["ok"]
    assert "onnx_sha256" in mlflow[f"model {seeded_model.name}"]["detail"]
    bad = mlflow[f"model {missing}"]
    assert not bad["ok"] and missing in bad["detail"] and "[models].served" in bad["hint"]


def test_a_model_without_its_previous_alias_fails(
    lab: LabHandle, tmp_path: Path, seeded_model: SeededModel
) -> None:
    import httpx

    httpx.request(
        "DELETE",
        f"{lab.settings.mlflow.url}/api/2.0/mlflow/registered-models/alias",
        json={"name": seeded_model.name, "alias": "previous"},
        timeout=10,
    ).raise_for_status()
    _, reports = run_doctor(doctor_config(tmp_path, served=[seeded_model.name]))
    check = checks(by_name(reports)["mlflow"])[f"model {seeded_model.name}"]
    assert not check["ok"] and "no alias previous" in check["detail"]


def test_the_redis_write_probe_leaves_no_key_behind(lab: LabHandle, tmp_path: Path) -> None:
    prefix = f"doctor-{uuid.uuid4().hex[:10]}"
    _, reports = run_doctor(doctor_config(tmp_path, key_prefix=prefix))
    check = checks(by_name(reports)["redis"])[f"writes under {prefix}:"]
    assert check["ok"] and f"{prefix}:doctor:" in check["detail"]
    client = redis.Redis.from_url(REDIS)
    assert list(client.scan_iter(match=f"{prefix}:*")) == []


@pytest.fixture
def read_only_user() -> Iterator[tuple[str, str]]:
    """A Redis ACL user that may read and PING but not write: what a read-only console gets."""
    name, password = f"doctor-ro-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    client = redis.Redis.from_url(REDIS)
    client.acl_setuser(
        name,
        enabled=True,
        passwords=[f"+{password}"],
        keys=["*"],
        commands=["+@read", "+ping", "+info"],
    )
    try:
        yield name, password
    finally:
        client.acl_deluser(name)


def test_read_only_skips_the_write_probe_and_a_writing_console_is_refused(
    lab: LabHandle, tmp_path: Path, read_only_user: tuple[str, str]
) -> None:
    """With a user that cannot write, the write probe fails (NOPERM) unless the console is
    read-only, when it is skipped; the password never shows."""
    name, password = read_only_user
    url = f"redis://{name}:{password}@127.0.0.1:{TEST_PORTS['redis']}/0"
    config = doctor_config(tmp_path, redis_url=url)
    result, reports = run_doctor(config)
    redis_report = by_name(reports)["redis"]
    write = checks(redis_report)["writes under aml:"]
    assert not write["ok"] and "NOPERM" in write["detail"].upper()
    assert password not in result.stdout + result.stderr
    result, reports = run_doctor(config, "--read-only")
    redis_report = by_name(reports)["redis"]
    assert redis_report["ok"], redis_report
    write = checks(redis_report)["writes under aml:"]
    assert write["detail"].startswith("skipped (read-only)")
    assert checks(redis_report)["authenticated"]["detail"] == f"as {name}"
    assert password not in result.stdout + result.stderr


def test_refused_redis_credentials_are_not_authenticated(lab: LabHandle, tmp_path: Path) -> None:
    secret = "wrong-" + uuid.uuid4().hex
    url = f"redis://nobody:{secret}@127.0.0.1:{TEST_PORTS['redis']}/0"
    result, reports = run_doctor(doctor_config(tmp_path, redis_url=url))
    report = by_name(reports)["redis"]
    assert result.returncode == 1
    assert report["error"].startswith("not authenticated")
    assert checks(report)["reachable"]["ok"]
    auth = checks(report)["authenticated"]
    assert not auth["ok"] and "[redis].url" in auth["hint"]
    assert secret not in result.stdout + result.stderr


def test_a_tampered_audit_log_fails_and_loose_modes_are_named(
    lab: LabHandle, tmp_path: Path
) -> None:
    config = doctor_config(tmp_path)
    log = append_records(config, 3)
    _, reports = run_doctor(config)
    audit = checks(by_name(reports)["audit"])
    assert audit["verifies"]["ok"] and "3 records" in audit["verifies"]["detail"]
    assert audit["file modes"]["ok"]

    data = bytearray(log.read_bytes())
    at = data.index(b'"operator":"') + len(b'"operator":"')
    data[at] = ord("X") if data[at] != ord("X") else ord("Y")
    log.write_bytes(bytes(data))
    log.chmod(0o644)
    result, reports = run_doctor(config)
    assert result.returncode == 1
    audit = checks(by_name(reports)["audit"])
    assert not audit["verifies"]["ok"] and "FAILED" in audit["verifies"]["detail"]
    assert "audit verify" in audit["verifies"]["hint"]
    assert not audit["file modes"]["ok"] and f"{log} is 0644" in audit["file modes"]["detail"]


def test_an_endpoint_that_skips_tls_verification_fails_loudly(
    lab: LabHandle, tmp_path: Path
) -> None:
    config = doctor_config(tmp_path)
    with config.open("a") as handle:
        handle.write("\n[alertmanager.tls_config]\ninsecure_skip_verify = true\n")
    result, reports = run_doctor(config)
    assert result.returncode == 1
    report = by_name(reports)["alertmanager"]
    tls = checks(report)["tls verification"]
    assert not tls["ok"] and "insecure_skip_verify" in tls["detail"]
    assert tls["hint"].startswith("!!") and "[alertmanager].tls_config.ca_file" in tls["hint"]
    assert failed_checks([report]) == [("alertmanager", "tls verification")]
