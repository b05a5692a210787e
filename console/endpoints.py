"""How the console authenticates to an HTTP endpoint: the options Prometheus' own
``http_config`` has (``basic_auth``, ``authorization``, ``headers``, ``tls_config``,
``proxy_url``), as pydantic models the config sections inherit.

Secrets are ``SecretStr`` (header values too: a tenant id or an API key), so printing a
section never shows one. A secret kept in a file is read when a client is made, not when the
config is loaded; a file that cannot be read is a one-line ``ConfigError`` naming the file,
never quoting what is in it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from console.errors import ConfigError

MAX_SECRET_BYTES = 64 * 1024


class _Options(BaseModel):
    """Unknown keys are errors, as in a config section: a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


def read_secret(path: Path, what: str) -> str:
    """The secret in ``path`` without surrounding whitespace (as Prometheus reads its
    ``*_file`` options). ``what`` names the option in the error: ``basic_auth.password_file``."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SECRET_BYTES:
        raise ConfigError(f"{what} {path} is over {MAX_SECRET_BYTES} bytes: not a secret file")
    try:
        secret = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None
    if not secret:
        raise ConfigError(f"{what} {path} is empty")
    if any(c in secret for c in "\r\n\0"):
        raise ConfigError(f"{what} {path} holds more than one line")
    return secret


def _exactly_one(value: SecretStr | None, path: Path | None, name: str) -> None:
    if (value is None) == (path is None):
        raise ValueError(f"set exactly one of {name} and {name}_file")


class BasicAuth(_Options):
    username: str = Field(min_length=1, max_length=256)
    password: SecretStr | None = None
    password_file: Path | None = None

    @field_validator("username")
    @classmethod
    def _no_colon(cls, value: str) -> str:
        if ":" in value or not value.isprintable():
            raise ValueError("username must be printable and without ':'")
        return value

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuth:
        _exactly_one(self.password, self.password_file, "password")
        return self

    def secret(self) -> str:
        if self.password is not None:
            return self.password.get_secret_value()
        assert self.password_file is not None  # the validator saw to it
        return read_secret(self.password_file, "basic_auth.password_file")


class Authorization(_Options):
    """The ``Authorization`` header: ``<type> <credentials>`` (``Bearer <token>``)."""

    type: str = Field(default="Bearer", pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
    credentials: SecretStr | None = None
    credentials_file: Path | None = None

    @field_validator("type")
    @classmethod
    def _not_basic(cls, value: str) -> str:
        if value.lower() == "basic":
            raise ValueError("use basic_auth for the Basic scheme")
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> Authorization:
        _exactly_one(self.credentials, self.credentials_file, "credentials")
        return self

    def header_value(self) -> str:
        if self.credentials is not None:
            secret = self.credentials.get_secret_value()
        else:
            assert self.credentials_file is not None
            secret = read_secret(self.credentials_file, "authorization.credentials_file")
        return f"{self.type} {secret}"


class TlsConfig(_Options):
    ca_file: Path | None = None
    """CA certificates (PEM) that sign the server's certificate; default: the system's."""
    cert_file: Path | None = None
    """Client certificate (PEM) for mutual TLS, with ``key_file``."""
    key_file: Path | None = None
    server_name: str | None = Field(default=None, min_length=1, max_length=253)
    """The name sent as SNI and checked against the certificate, when the URL's host is not it
    (a URL by IP address, a tunnel)."""
    insecure_skip_verify: bool = False
    """Accept any certificate. Anyone on the path can then read and change the traffic and its
    credentials: the console warns at every start, and ``doctor`` fails the endpoint."""

    @model_validator(mode="after")
    def _cert_with_key(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both cert_file and key_file, or neither")
        return self


RESERVED_HEADERS = frozenset({"authorization", "host", "content-length", "transfer-encoding"})


class HttpCredentials(_Options):
    """What a request to one endpoint carries to prove who sends it."""

    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Sent with every request, e.g. ``X-Scope-OrgID`` (a Mimir/Cortex tenant) or an API key.
    Their values are treated as secrets: never shown."""
    tls_config: TlsConfig | None = None

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, item in value.items():
            if not name or any(c in name for c in "\r\n: ") or not name.isprintable():
                raise ValueError(f"header name {name[:40]!r} is not a header name")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is reserved (use authorization or basic_auth)")
            if any(c in item.get_secret_value() for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a line break in its value")
        return value

    @model_validator(mode="after")
    def _one_scheme(self) -> HttpCredentials:
        if self.basic_auth is not None and self.authorization is not None:
            raise ValueError("set basic_auth or authorization, not both")
        return self

    @property
    def sends_credentials(self) -> bool:
        """Whether a request carries anything that authenticates it."""
        tls = self.tls_config
        return bool(
            self.basic_auth or self.authorization or self.headers or (tls and tls.cert_file)
        )

    def credentials_summary(self) -> str:
        """What is sent, without any secret: ``basic_auth (oncall), headers X-Scope-OrgID``."""
        parts = []
        if self.basic_auth is not None:
            parts.append(f"basic_auth ({self.basic_auth.username})")
        if self.authorization is not None:
            parts.append(f"authorization ({self.authorization.type})")
        if self.headers:
            parts.append("headers " + ", ".join(sorted(self.headers)))
        if self.tls_config is not None and self.tls_config.cert_file is not None:
            parts.append("client certificate")
        return ", ".join(parts) or "no credentials"


class HttpClientOptions(HttpCredentials):
    proxy_url: str | None = None
    """The one proxy to go through; HTTP(S)_PROXY from the environment is never used."""

    @field_validator("proxy_url")
    @classmethod
    def _proxy_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value


class HttpEndpoint(HttpClientOptions):
    """An HTTP backend: where it is, how long to wait, and how to authenticate."""

    url: str
    timeout_s: float = Field(default=5.0, gt=0)


def mlflow_environment_auth() -> tuple[BasicAuth | None, Authorization | None]:
    """The credentials the mlflow client itself takes from the environment:
    MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic; first, as the client checks
    them first), else MLFLOW_TRACKING_TOKEN (bearer)."""
    username = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    token = os.environ.get("MLFLOW_TRACKING_TOKEN", "")
    if username and password:
        return BasicAuth(username=username, password=SecretStr(password)), None
    if token:
        return None, Authorization(credentials=SecretStr(token))
    return None, None


__all__ = [
    "Authorization",
    "BasicAuth",
    "HttpClientOptions",
    "HttpCredentials",
    "HttpEndpoint",
    "TlsConfig",
    "mlflow_environment_auth",
    "read_secret",
]
