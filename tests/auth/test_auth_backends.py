"""The console's clients against real Prometheus, Alertmanager and MLflow with authentication
on: the right credentials read real data; wrong or missing ones are a BackendAuthError naming
the backend and its URL; a certificate the console cannot check is named as such."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from auth_support import AuthServer, Pki, auth_console
from support import LabHandle

from console.adapters.alertmanager import Matcher
from console.adapters.backends import Backends
from console.config import Settings, load_settings
from console.errors import BackendAuthError, BackendUnavailable, ConfigError


def settings_of(lab: LabHandle, tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    return load_settings(auth_console(lab, tmp_path, sections).config_path)


async def query_until(backends: Backends, expr: str, timeout_s: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        samples = (await backends.prometheus.query(expr)).samples
        if samples or time.monotonic() > deadline:
            return samples
        await _sleep(0.5)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_prometheus_with_its_password_file_and_ca_answers_promql(
    lab: LabHandle, auth_prometheus: AuthServer, tmp_path: Path
) -> None:
    settings = settings_of(lab, tmp_path, prometheus=auth_prometheus.section())
    backends = Backends(settings)
    try:
        # Prometheus scrapes itself through the same TLS and basic auth: real series.
        samples = await query_until(backends, 'up{job="self"} == 1')
        assert [s.metric["job"] for s in samples] == ["self"]
        build = await backends.prometheus.query("prometheus_build_info")
        assert build.samples and build.samples[0].metric.get("version")
    finally:
        await backends.aclose()


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ("wrong", "refused the credentials (401)"),
        ("none", "refused the credentials (401): no credentials configured"),
    ],
)
async def test_prometheus_refusing_the_credentials_is_its_own_error(
    lab: LabHandle, auth_prometheus: AuthServer, tmp_path: Path, auth: str, message: str
) -> None:
    settings = settings_of(lab, tmp_path, prometheus=auth_prometheus.section(auth=auth))
    backends = Backends(settings)
    try:
        with pytest.raises(BackendAuthError) as caught:
            await backends.prometheus.query("up")
    finally:
        await backends.aclose()
    assert str(caught.value) == f"prometheus at {auth_prometheus.url} {message}"
    assert caught.value.status == 401 and not caught.value.retryable


@pytest.mark.parametrize("ca", [False, "other"])
async def test_a_certificate_the_console_cannot_check_is_named(
    lab: LabHandle, auth_prometheus: AuthServer, pki: Pki, tmp_path: Path, ca: str | bool
) -> None:
    """No CA (the system's do not know the test CA), or a CA that did not sign it."""
    section = auth_prometheus.section(ca=pki.other_ca if ca == "other" else False)
    backends = Backends(settings_of(lab, tmp_path, prometheus=section))
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await backends.prometheus.query("up")
    finally:
        await backends.aclose()
    text = str(caught.value)
    assert text.startswith(f"prometheus at {auth_prometheus.url}: TLS: certificate verify failed")
    assert "(set tls_config.ca_file)" in text
    assert not caught.value.retryable


async def test_insecure_skip_verify_connects_and_warns(
    lab: LabHandle,
    auth_prometheus: AuthServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    section = auth_prometheus.section(
        ca=False, extra={"tls_config": {"insecure_skip_verify": True}}
    )
    backends = Backends(settings_of(lab, tmp_path, prometheus=section))
    try:
        assert (await backends.prometheus.query("vector(1)")).samples[0].value == 1.0
    finally:
        await backends.aclose()
    assert any("TLS certificate checks are OFF" in r.getMessage() for r in caplog.records)


async def test_mutual_tls_client_certificate_is_loaded(
    lab: LabHandle, auth_prometheus: AuthServer, pki: Pki, tmp_path: Path
) -> None:
    """The client certificate and key are loaded and offered (this Prometheus asks for none,
    so it answers as before); a key file that cannot be read is a one-line ConfigError."""
    tls = {
        "ca_file": str(pki.ca),
        "cert_file": str(pki.client_cert),
        "key_file": str(pki.client_key),
    }
    ok = auth_prometheus.section(extra={"tls_config": tls})
    backends = Backends(settings_of(lab, tmp_path / "ok", prometheus=ok))
    try:
        assert (await backends.prometheus.query("vector(2)")).samples[0].value == 2.0
    finally:
        await backends.aclose()
    missing = auth_prometheus.section(
        extra={"tls_config": {**tls, "key_file": str(tmp_path / "no-such.key")}}
    )
    backends = Backends(settings_of(lab, tmp_path / "bad", prometheus=missing))
    with pytest.raises(ConfigError) as caught:
        backends.prometheus  # noqa: B018 - building the client loads the files
    assert "tls_config.cert_file/key_file" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_a_missing_password_file_names_the_file_not_a_secret(
    lab: LabHandle, auth_prometheus: AuthServer, tmp_path: Path
) -> None:
    section = auth_prometheus.section()
    section["basic_auth"]["password_file"] = str(tmp_path / "gone")
    backends = Backends(settings_of(lab, tmp_path, prometheus=section))
    with pytest.raises(ConfigError) as caught:
        backends.prometheus  # noqa: B018
    assert str(caught.value) == (
        f"cannot read basic_auth.password_file {tmp_path / 'gone'}: No such file or directory"
    )


async def test_alertmanager_alerts_and_silences_with_credentials(
    lab: LabHandle, auth_alertmanager: AuthServer, tmp_path: Path
) -> None:
    name = f"AuthTest{uuid.uuid4().hex[:8]}"
    backends = Backends(settings_of(lab, tmp_path, alertmanager=auth_alertmanager.section()))
    try:
        am = backends.alertmanager
        await am.post_alerts([{"labels": {"alertname": name, "severity": "warning"}}])
        deadline = time.monotonic() + 20
        while not [a for a in await am.alerts() if a.labels.get("alertname") == name]:
            assert time.monotonic() < deadline, "the posted alert never showed"
            await _sleep(0.2)
        now = datetime.now(UTC)
        matchers = [Matcher(name="alertname", value=name)]
        silence_id = await am.create_silence(matchers, now, now + timedelta(minutes=5), "t", "c")
        assert [s.id for s in await am.active_silences(matchers)] == [silence_id]
    finally:
        await backends.aclose()


async def test_alertmanager_with_a_wrong_password(
    lab: LabHandle, auth_alertmanager: AuthServer, tmp_path: Path
) -> None:
    section = auth_alertmanager.section(auth="wrong")
    backends = Backends(settings_of(lab, tmp_path, alertmanager=section))
    try:
        with pytest.raises(BackendAuthError) as caught:
            await backends.alertmanager.alerts()
    finally:
        await backends.aclose()
    assert (
        str(caught.value)
        == f"alertmanager at {auth_alertmanager.url} refused the credentials (401)"
    )


async def seed_registry(settings: Settings) -> str:
    """A registered model with one version and a ``champion`` alias, made as the admin."""
    name = f"auth-{uuid.uuid4().hex[:10]}"
    backends = Backends(settings)
    try:
        registry = backends.registry
        assert await registry.create_model(name) is not None
        version = await registry.create_version(name, "s3://bucket/digits.onnx", "")
        await registry.set_alias(name, "champion", version.version)
    finally:
        await backends.aclose()
    return name


async def test_registry_reads_models_and_aliases_with_basic_auth(
    lab: LabHandle, auth_mlflow: AuthServer, tmp_path: Path
) -> None:
    settings = settings_of(lab, tmp_path, mlflow=auth_mlflow.section())
    name = await seed_registry(settings)
    backends = Backends(settings)
    try:
        model = await backends.registry.require_model(name)
        assert model.aliases == {"champion": "1"}
    finally:
        await backends.aclose()


@pytest.mark.parametrize(("auth", "hint"), [("wrong", ""), ("none", ": no credentials configured")])
async def test_registry_refusing_the_credentials(
    lab: LabHandle, auth_mlflow: AuthServer, tmp_path: Path, auth: str, hint: str
) -> None:
    backends = Backends(settings_of(lab, tmp_path, mlflow=auth_mlflow.section(auth=auth)))
    try:
        with pytest.raises(BackendAuthError) as caught:
            await backends.registry.get_model("digits")
    finally:
        await backends.aclose()
    assert str(caught.value) == f"mlflow at {auth_mlflow.url} refused the credentials (401){hint}"


async def test_registry_takes_the_mlflow_clients_environment(
    lab: LabHandle, auth_mlflow: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLFLOW_TRACKING_USERNAME/PASSWORD when [mlflow] sets no auth; a MLFLOW_TRACKING_TOKEN
    is sent as a bearer token (this basic-auth server refuses it, as a sent credential)."""
    plain = auth_mlflow.section(auth="none")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", auth_mlflow.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", auth_mlflow.password)
    settings = settings_of(lab, tmp_path / "basic", mlflow=plain)
    assert settings.mlflow.basic_auth is not None
    name = await seed_registry(settings)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "token-CANARY-0c4e")
    settings = settings_of(lab, tmp_path / "token", mlflow=plain)
    assert settings.mlflow.authorization is not None
    assert "token-CANARY-0c4e" not in repr(settings) + str(settings.mlflow)
    backends = Backends(settings)
    try:
        with pytest.raises(BackendAuthError) as caught:
            await backends.registry.get_model(name)
    finally:
        await backends.aclose()
    assert str(caught.value) == f"mlflow at {auth_mlflow.url} refused the credentials (401)"


@pytest.mark.parametrize(("server_name", "works"), [("localhost", True), ("prom.example", False)])
async def test_server_name_is_the_name_the_certificate_is_checked_against(
    lab: LabHandle,
    auth_prometheus: AuthServer,
    pki: Pki,
    tmp_path: Path,
    server_name: str,
    works: bool,
) -> None:
    """The certificate names 127.0.0.1 and localhost: ``server_name`` replaces the URL's host
    in the check (and in SNI), so a name it does not carry fails, naming the mismatch."""
    tls = {"ca_file": str(pki.ca), "server_name": server_name}
    section = auth_prometheus.section(extra={"tls_config": tls})
    backends = Backends(settings_of(lab, tmp_path, prometheus=section))
    try:
        if works:
            assert (await backends.prometheus.query("vector(3)")).samples[0].value == 3.0
            return
        with pytest.raises(BackendUnavailable) as caught:
            await backends.prometheus.query("vector(3)")
    finally:
        await backends.aclose()
    text = str(caught.value)
    assert "TLS: certificate verify failed: Hostname mismatch" in text
    assert "prom.example" in text and "tls_config.server_name" in text
