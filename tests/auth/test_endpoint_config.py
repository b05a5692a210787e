"""The endpoint options are checked when the config is loaded: each mistake is one line
naming the field, and no secret is quoted in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from auth_support import toml_text

from console.config import load_settings
from console.errors import ConfigError

URL = "https://prom.example:9090"


@pytest.mark.parametrize(
    ("section", "field", "problem"),
    [
        ({"basic_auth": {"username": "u"}}, "prometheus.basic_auth", "set exactly one of password"),
        (
            {"basic_auth": {"username": "u", "password": "SECRET-1", "password_file": "/x"}},
            "prometheus.basic_auth",
            "set exactly one of password and password_file",
        ),
        (
            {
                "basic_auth": {"username": "u", "password": "SECRET-1"},
                "authorization": {"credentials": "SECRET-2"},
            },
            "prometheus",
            "set basic_auth or authorization, not both",
        ),
        (
            {"authorization": {"type": "Basic", "credentials": "SECRET-2"}},
            "prometheus.authorization.type",
            "use basic_auth for the Basic scheme",
        ),
        (
            {"headers": {"Authorization": "SECRET-3"}},
            "prometheus.headers",
            "header 'Authorization' is reserved",
        ),
        (
            {"tls_config": {"cert_file": "/c.pem"}},
            "prometheus.tls_config",
            "set both cert_file and key_file, or neither",
        ),
        ({"proxy_url": "socks://p:1"}, "prometheus.proxy_url", "must be an http:// or https://"),
        (
            {"tls_config": {"ca": "/x"}},
            "prometheus.tls_config.ca",
            "Extra inputs are not permitted",
        ),
    ],
)
def test_bad_endpoint_options_are_one_line_naming_the_field(
    tmp_path: Path, section: dict[str, Any], field: str, problem: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml_text({}, {"prometheus": {"url": URL, **section}}))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = str(caught.value)
    assert "\n" not in text
    assert f"{field}: {problem}" in text
    assert "SECRET" not in text


def test_http_action_auth_only_for_allowed_hosts(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    sections = {
        "http_action": {
            "allowed_hosts": ["hooks.example.com"],
            "auth": {"evil.example": {"authorization": {"credentials": "SECRET-4"}}},
        }
    }
    path.write_text(toml_text({}, sections))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "auth for hosts not in allowed_hosts: evil.example" in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_the_issues_example_loads_and_hides_its_secrets(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        toml_text(
            {},
            {
                "prometheus": {
                    "url": URL,
                    "basic_auth": {"username": "oncall", "password_file": "/run/secrets/prom"},
                    "headers": {"X-Scope-OrgID": "SECRET-tenant"},
                },
                "mlflow": {
                    "url": "https://mlflow.example",
                    "authorization": {"credentials": "SECRET-5"},
                },
            },
        )
    )
    settings = load_settings(path)
    assert settings.prometheus.basic_auth is not None
    assert settings.prometheus.basic_auth.password_file == Path("/run/secrets/prom")
    assert settings.prometheus.credentials_summary() == "basic_auth (oncall), headers X-Scope-OrgID"
    assert "SECRET" not in repr(settings) + str(settings.model_dump())
