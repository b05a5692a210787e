"""Helpers of the authenticated-endpoint tests: the servers' handles, and console configs that
point at them with the right, wrong or no credentials."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import REPO, LabHandle

AUDIT_KEY = "auth-test-audit-key-" + "y" * 16


@dataclass(frozen=True)
class Pki:
    """A CA of the session's, the servers' certificate it signed (for 127.0.0.1 and
    localhost), a client certificate, and a second CA that signed none of them."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass(frozen=True)
class AuthServer:
    name: str
    url: str
    home: Path
    username: str
    password: str
    password_file: Path
    ca_file: Path | None

    def section(
        self,
        *,
        auth: str = "file",
        ca: Path | None | bool = True,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A config section for this server. ``auth``: ``file`` (password_file), ``inline``,
        ``wrong`` (a wrong password) or ``none``; ``ca``: True for the server's CA, a path for
        another, False or None for none."""
        out: dict[str, Any] = {"url": self.url}
        if auth == "file":
            out["basic_auth"] = {
                "username": self.username,
                "password_file": str(self.password_file),
            }
        elif auth == "inline":
            out["basic_auth"] = {"username": self.username, "password": self.password}
        elif auth == "wrong":
            out["basic_auth"] = {"username": self.username, "password": "not-the-password"}
        if self.ca_file is not None and ca:
            out["tls_config"] = {"ca_file": str(self.ca_file if ca is True else ca)}
        out.update(extra or {})
        return out


def write_secret(path: Path, secret: str) -> Path:
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path


@dataclass
class AuthConsole:
    """A console config file against the auth servers (and the session lab's Redis), with its
    own run dir, audit log and key prefix; ``env`` runs the CLI on it."""

    config_path: Path
    run_dir: Path
    env: dict[str, str]
    sections: dict[str, Any] = field(default_factory=dict)

    def written_files(self) -> list[Path]:
        return [p for p in self.run_dir.rglob("*") if p.is_file()]


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def toml_text(top: dict[str, Any], sections: dict[str, dict[str, Any]]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for name, body in sections.items():
        lines.append(f"\n[{name}]")
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def auth_console(
    lab: LabHandle, tmp_path: Path, sections: dict[str, dict[str, Any]]
) -> AuthConsole:
    run_dir = tmp_path / "run"
    top = {
        "environment": "auth-test",
        "operator": "auth-tester",
        "run_dir": str(run_dir),
        "runbook_dirs": [str(REPO / "runbooks")],
    }
    base: dict[str, dict[str, Any]] = {
        "redis": {
            "url": lab.settings.redis.url,
            "key_prefix": f"auth{secrets.token_hex(4)}",
        },
        "audit": {"path": str(run_dir / "audit" / "audit.jsonl"), "hmac_key": AUDIT_KEY},
        "locks": {"lease_s": 30},
    }
    base.update(sections)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(toml_text(top, base))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CONSOLE_", "MLFLOW_TRACKING_"))
    }
    env["CONSOLE_CONFIG"] = str(path)
    return AuthConsole(config_path=path, run_dir=run_dir, env=env, sections=base)
