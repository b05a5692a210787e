"""Configuration errors are one clear line naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO
from typer.testing import CliRunner

from console.cli.main import app
from console.config import load_settings
from console.errors import ConfigError


def test_env_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('operator = "from-file"\n[redis]\nurl = "redis://10.0.0.1:6379/0"\n')
    monkeypatch.setenv("CONSOLE_REDIS__URL", "redis://127.0.0.1:1/0")
    settings = load_settings(config)
    assert settings.operator == "from-file"
    assert settings.redis.url == "redis://127.0.0.1:1/0"


def test_bad_values_name_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[locks]\nlease_s = -5\n[audit]\nmirror = "kafka"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    message = str(err.value)
    assert str(config) in message and "locks.lease_s" in message and "audit.mirror" in message


def test_unknown_keys_and_broken_toml(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[redis]\nurll = 'x'\n")
    with pytest.raises(ConfigError, match="redis.urll"):
        load_settings(config)
    config.write_text("[redis\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)


def test_cli_shows_config_errors_as_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = CliRunner().invoke(app, ["--config", str(missing), "runbook", "status"])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: config file not found: {missing} (from --config)"


def _template_with_prod(tmp_path: Path) -> Path:
    """The template ``config init`` writes, with its commented prod context switched on as a
    user would: every ``# `` of the prod block removed."""
    lines, in_prod = [], False
    for line in (REPO / "configs" / "config-template.toml").read_text().splitlines():
        in_prod = in_prod or line.startswith("# [contexts.prod]")
        if in_prod and line.startswith("#"):
            line = line[2:] if line.startswith("# ") else line[1:]
            line = "" if line.startswith(" ") or not line.strip() else line  # prose
        lines.append(line)
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_templates_prod_context_is_read_only_and_red(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CONSOLE_READ_ONLY", "CONSOLE_ENVIRONMENT", "CONSOLE_CONFIG", "CONSOLE_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    config = _template_with_prod(tmp_path)
    settings = load_settings(config, "prod")
    assert settings.context == "prod"
    assert settings.environment == "prod" and settings.read_only
    assert settings.prometheus.url == "https://prometheus.monitoring.svc:9090"
    from console.tui.skin import environment_style

    assert environment_style(settings.environment, settings.tui.environment_color).endswith(
        "on red"
    )
    assert environment_style("staging").endswith("on yellow")
    assert environment_style("lab").endswith("on green")
    assert load_settings(config).context == "lab"  # the template's current_context


def test_tui_refresh_must_be_sane(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[tui]\nrefresh_s = 0.01\n")
    with pytest.raises(ConfigError, match="refresh_s"):
        load_settings(config)


def test_product_settings_need_no_lab_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The production context names its served models and detectors in product sections: no
    ``[gateway]`` (the lab's) is needed, and the views and replay read those."""
    monkeypatch.delenv("CONSOLE_CONFIG", raising=False)
    config = _template_with_prod(tmp_path)
    text = config.read_text()
    prod = text[text.index("[contexts.prod]") :]
    assert "gateway]" not in prod and "traffic]" not in prod and ".lab]" not in prod
    settings = load_settings(config, "prod")
    assert settings.models.served == ["digits"]
    assert settings.detectors.squeezers == ["bits2"]


def test_files_of_the_earlier_layout_mean_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Served models, squeezers and the flag threshold used to live under [gateway]: such a
    file, or such an environment variable, still means the same; an explicit new key wins."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[gateway]\nurl = "http://127.0.0.1:1"\nmodels = ["a", "b"]\n'
        'squeezers = ["median2"]\nflag_threshold = 0.3\n'
    )
    settings = load_settings(config)
    assert settings.models.served == ["a", "b"]
    assert settings.detectors.squeezers == ["median2"]
    assert settings.detectors.flag_threshold == 0.3
    assert settings.gateway.url == "http://127.0.0.1:1"
    monkeypatch.setenv("CONSOLE_GATEWAY__MODELS", '["c"]')
    monkeypatch.setenv("CONSOLE_DETECTORS__FLAG_THRESHOLD", "0.7")
    settings = load_settings(config)
    assert settings.models.served == ["c"]
    assert settings.detectors.flag_threshold == 0.7
    config.write_text('[gateway]\nmodels = ["old"]\n[models]\nserved = ["new"]\n')
    assert load_settings(config).models.served == ["new"]


def test_tls_options_in_a_redis_url_are_refused(tmp_path: Path) -> None:
    """redis-py would read ``ssl_cert_reqs=none`` from the URL and stop checking the
    certificate without a word; the console's loud switch is tls_config."""
    config = tmp_path / "c.toml"
    config.write_text('[redis]\nurl = "rediss://10.0.0.1:6380/0?ssl_cert_reqs=none"\n')
    with pytest.raises(ConfigError, match="TLS options in the URL are refused"):
        load_settings(config)
