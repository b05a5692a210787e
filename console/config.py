"""Settings: one context of a TOML file (which file and which context: ``console.config_files``)
plus environment overrides.

Environment variables win over the file: ``CONSOLE_REDIS__URL``, ``CONSOLE_AUDIT__HMAC_KEY``,
``CONSOLE_READ_ONLY=1`` ... (prefix ``CONSOLE_``, ``__`` between section and field). Relative
paths are relative to the working directory; unset ones default to the context's state folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from console import shipped
from console.config_fields import HttpUrl, RedisUrl, Section
from console.config_files import choose_context, find_config, read_config
from console.config_lab import GatewaySection, LabSection, TrafficSection
from console.config_policy import (
    AclSection,
    ApprovalsSection,
    EnvWithinFile,
    IdentitySection,
    PolicyEndpointSection,
)
from console.config_robustness import RobustnessSection
from console.config_signing import SigningFields
from console.endpoints import (
    HttpClientOptions,
    HttpCredentials,
    HttpEndpoint,
    TlsConfig,
    mlflow_environment_auth,
    read_secret,
)
from console.errors import ConfigError
from console.locations import context_state_dir, user_drills_dir, user_runbooks_dir
from console.operator_identity import resolve_operator


class RedisSection(Section):
    url: RedisUrl = "redis://127.0.0.1:16379/0"
    """Policy store and lock service. ``rediss://`` for TLS; credentials in the URL
    (``redis://user:pw@host``) work too, and are never shown."""
    timeout_s: float = 2.0
    """Per-command timeout."""
    key_prefix: str = "aml"
    """Prefix of every key the console writes (policies, locks, audit mirror)."""
    username: str | None = Field(default=None, min_length=1, max_length=256)
    """ACL user (Redis 6+); without one, a password is the ``default`` user's (requirepass)."""
    password: SecretStr | None = None
    """Prefer ``CONSOLE_REDIS__PASSWORD`` or ``password_file``."""
    password_file: Path | None = None
    """File holding the password, read when a client is made."""
    tls_config: TlsConfig | None = None
    """For a ``rediss://`` URL: ``ca_file``, ``cert_file`` and ``key_file`` (mutual TLS),
    ``insecure_skip_verify``. Without it, the system's CAs verify the server."""

    @model_validator(mode="after")
    def _credentials_once(self) -> RedisSection:
        url_user, url_password = self._url_userinfo()
        has_password = self.password is not None or self.password_file is not None
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        if (url_password and has_password) or (url_user and self.username is not None):
            raise ValueError("the URL carries credentials: set them there or in the fields")
        tls = self.tls_config
        if tls is not None and not self.url.startswith("rediss:"):
            raise ValueError("tls_config needs a rediss:// URL")
        if tls is not None and tls.server_name is not None:
            raise ValueError("tls_config.server_name is not supported: redis checks the URL's host")
        return self

    def _url_userinfo(self) -> tuple[str | None, str | None]:
        try:
            parts = urlsplit(self.url)
            return parts.username, parts.password
        except ValueError:
            return None, None

    def credentials_summary(self) -> str:
        """What is sent, without any secret: ``user oncall, password, client certificate``."""
        url_user, url_password = self._url_userinfo()
        user = self.username or url_user
        parts = [f"user {user}"] if user else []
        if url_password or self.password is not None or self.password_file is not None:
            parts.append("password")
        if self.tls_config is not None and self.tls_config.cert_file is not None:
            parts.append("client certificate")
        return ", ".join(parts) or "no credentials"

    def password_value(self) -> str | None:
        """The password (``password`` or ``password_file``); ConfigError if unreadable."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return read_secret(self.password_file, "redis.password_file")
        return None


class MlflowSection(HttpEndpoint, Section):
    url: HttpUrl = "http://127.0.0.1:15000"
    """MLflow tracking server (the model registry)."""
    timeout_s: float = 5.0

    @model_validator(mode="after")
    def _mlflow_client_environment(self) -> MlflowSection:
        """Without auth of its own: what the mlflow client reads (``MLFLOW_TRACKING_*``)."""
        if self.basic_auth is None and self.authorization is None:
            self.basic_auth, self.authorization = mlflow_environment_auth()
        return self


class AlertmanagerSection(HttpEndpoint, Section):
    url: HttpUrl = "http://127.0.0.1:19093"
    timeout_s: float = 5.0


class PrometheusSection(HttpEndpoint, Section):
    url: HttpUrl = "http://127.0.0.1:19090"
    """PromQL endpoint the console queries: Prometheus, or any compatible engine (point it at
    ``victoria_metrics.url`` when the lab runs VictoriaMetrics)."""
    timeout_s: float = 5.0


class VictoriaMetricsSection(HttpEndpoint, Section):
    """The lab's alternative query engine (``lab up --metrics victoria-metrics``). Its
    credentials and TLS options serve ``url`` and ``vmalert_url`` both."""

    url: HttpUrl = "http://127.0.0.1:18428"
    """VictoriaMetrics single node: scrapes the lab's targets and answers PromQL."""
    vmalert_url: HttpUrl = "http://127.0.0.1:18880"
    """vmalert: evaluates ``configs/prometheus/*.yml`` against it, alerts to Alertmanager."""
    timeout_s: float = 5.0


class TracesSection(HttpClientOptions, Section):
    path: str = ""
    """OTLP JSON-lines files, or a Tempo/Jaeger URL (then with these credentials and TLS);
    default ``<run_dir>/traces``."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Per request to a Tempo/Jaeger ``path``."""
    query_api: Literal["tempo", "jaeger"] = "tempo"
    """The trace-by-id API a URL ``path`` answers: Tempo's ``/api/traces`` or Jaeger's v3."""
    otlp_endpoint: HttpUrl | None = None
    """The lab gateway also exports its spans over OTLP/HTTP (JSON) to this receiver's base
    URL, e.g. ``http://127.0.0.1:4318`` (an OpenTelemetry Collector, Tempo or Jaeger v2)."""


class SamplesSection(Section):
    path: str = ""
    """Sample store: a directory of Parquet/JSONL files partitioned by day, or an fsspec URL;
    default ``<run_dir>/samples``."""


class AuditSection(Section):
    path: Path | None = None
    """Append-only JSONL log; default ``<run_dir>/audit/audit.jsonl``."""
    checkpoint_path: Path | None = None
    """Authenticated head (record count + last hash); default ``<audit path>.head``."""
    hmac_key: SecretStr | None = None
    """Key of the records' HMAC. Prefer ``CONSOLE_AUDIT__HMAC_KEY`` or ``hmac_key_file``."""
    hmac_key_file: Path | None = None
    """File holding the HMAC key; default ``<run_dir>/secrets/audit.key`` when that file exists
    (``lab up`` writes one there)."""
    mirror: Literal["none", "redis"] = "none"
    """Also write each record to a shared sink (a Redis stream)."""
    mirror_stream: str = "aml:audit"
    mirror_deadline_s: float = 2.0
    """A mirror that does not answer within this is a failed write: the action does not run."""
    witness: Literal["file", "none"] = "file"
    """Keep the log's signed head a second time, away from the log's directory, so a rollback
    of log and checkpoint together is caught (see ``console.audit.witness``)."""
    witness_path: Path | None = None
    """Default ``$XDG_STATE_HOME/aml-console/witness/<log name>-<path hash>.witness``."""


class LockSection(Section):
    lease_s: float = Field(default=60.0, gt=0)
    """A run's lease on its target; renewed before every step."""


class HttpActionSection(Section):
    allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost"])
    """Hosts the templated HTTP action may call. Anything else is refused at plan time."""
    timeout_s: float = 5.0
    proxy: str | None = None
    """The only proxy the HTTP action goes through (its host must be in allowed_hosts too).
    HTTP_PROXY, HTTPS_PROXY and ALL_PROXY from the environment are never used."""
    auth: dict[str, HttpCredentials] = Field(default_factory=dict)
    """Per allowed host (``[http_action.auth."hooks.example.com"]``): basic_auth,
    authorization, headers and tls_config the action applies to every request to that host.
    They win over a runbook's own headers of the same name."""

    @model_validator(mode="after")
    def _auth_hosts_allowed(self) -> HttpActionSection:
        strays = sorted(set(self.auth) - set(self.allowed_hosts))
        if strays:
            raise ValueError(f"auth for hosts not in allowed_hosts: {', '.join(strays)}")
        return self


SqueezerName = Literal["bits2", "median2", "median3"]


class ModelsSection(SigningFields):
    """The models under watch."""

    served: list[str] = Field(default_factory=lambda: ["digits"], min_length=1)
    """Registry models served to clients (each one's ``champion`` alias): the Models view,
    replay's default and the lab gateway all read this list."""
    endpoints: dict[str, HttpClientOptions] = Field(default_factory=dict)
    """Credentials, TLS and proxy of the V2 model servers replay calls (``--endpoint``), by
    base URL: ``[models.endpoints."https://kserve.example.com"]``."""

    def endpoint_options(self, url: str) -> HttpClientOptions | None:
        wanted = url.strip().rstrip("/")
        return next((o for u, o in self.endpoints.items() if u.rstrip("/") == wanted), None)


class DetectorsSection(Section):
    """How inputs are scored, the same wherever they are scored (a gateway, replay)."""

    squeezers: list[SqueezerName] = Field(default_factory=lambda: list[SqueezerName](["bits2"]))
    """Feature-squeezing transforms. Median smoothing erases strokes on 8x8 digits and flags
    about half of clean inputs, so the lab uses bit-depth reduction alone (measured in
    docs/architecture.md); add medians for larger images."""
    flag_threshold: float = Field(default=0.5, ge=0, le=1)
    """Detector score at or above which an input is flagged (and, at a gateway, sampled)."""


class ClientStateSection(HttpClientOptions, Section):
    """Where the guarded gateway serves its per-client state (``/aml/clients``): who is
    counted as ``other`` when every client label slot is held."""

    url: str | None = None
    """Default: the lab gateway's ``gateway.url``."""
    timeout_s: float = Field(default=2.0, gt=0)


class TuiSection(Section):
    """The on-call console (`aml-console tui`)."""

    refresh_s: float = Field(default=2.0, ge=0.5, le=300)
    """Seconds between refreshes of a view (`--refresh` overrides it)."""
    environment_color: Literal["auto", "red", "yellow", "green", "blue", "magenta"] = "auto"
    """Colour of the environment label on every screen, as k9s colours a context. ``auto``:
    red for prod/production, yellow for staging, green otherwise."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONSOLE_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    environment: str = "lab"
    """Label shown on every screen and in every audit record (e.g. prod, staging, lab)."""
    operator: str = ""
    """Who acts; written into every audit record. Unset: by ``[identity] source`` (the OS
    user by default); ``operator_source`` says where the name came from."""
    read_only: bool = False
    """Refuse every action; plans and dry runs still work."""
    run_dir: Path = Field(default_factory=lambda: context_state_dir("lab"))
    """Data, pids, logs, run state and the default audit log; default
    ``$XDG_STATE_HOME/aml-console/contexts/<context>``."""
    runbook_dirs: list[Path] = Field(default_factory=list)
    """Runbook folders of this context, after the shipped runbooks and the user's
    ``$XDG_CONFIG_HOME/aml-console/runbooks/``; a later runbook of the same name wins."""
    drill_dirs: list[Path] = Field(default_factory=list)
    """Drill scenario folders, after the shipped ones and ``$XDG_CONFIG_HOME/aml-console/
    drills/`` (``drill list``); reports go to ``<run_dir>/drills/``."""

    redis: RedisSection = Field(default_factory=RedisSection)
    mlflow: MlflowSection = Field(default_factory=MlflowSection)
    alertmanager: AlertmanagerSection = Field(default_factory=AlertmanagerSection)
    prometheus: PrometheusSection = Field(default_factory=PrometheusSection)
    traces: TracesSection = Field(default_factory=TracesSection)
    samples: SamplesSection = Field(default_factory=SamplesSection)
    audit: AuditSection = Field(default_factory=AuditSection)
    locks: LockSection = Field(default_factory=LockSection)
    http_action: HttpActionSection = Field(default_factory=HttpActionSection)
    models: ModelsSection = Field(default_factory=ModelsSection)
    detectors: DetectorsSection = Field(default_factory=DetectorsSection)
    client_state: ClientStateSection = Field(default_factory=ClientStateSection)
    tui: TuiSection = Field(default_factory=TuiSection)
    policy_endpoint: PolicyEndpointSection = Field(default_factory=PolicyEndpointSection)
    acl: AclSection = Field(default_factory=AclSection)
    identity: IdentitySection = Field(default_factory=IdentitySection)
    approvals: ApprovalsSection = Field(default_factory=ApprovalsSection)
    robustness: RobustnessSection = Field(default_factory=RobustnessSection)
    # The lab's own sections: what `lab up` starts. A production file leaves them out.
    victoria_metrics: VictoriaMetricsSection = Field(default_factory=VictoriaMetricsSection)
    gateway: GatewaySection = Field(default_factory=GatewaySection)
    traffic: TrafficSection = Field(default_factory=TrafficSection)
    lab: LabSection = Field(default_factory=LabSection)

    @model_validator(mode="before")
    @classmethod
    def _earlier_layout(cls, data: Any) -> Any:
        """Files written before ``[models]`` and ``[detectors]`` existed kept these under
        ``[gateway]``; they still mean the same (an explicit new key wins)."""
        if not isinstance(data, dict) or not isinstance(data.get("gateway"), dict):
            return data
        gateway = dict(data["gateway"])
        moved = {
            "models": ("models", "served"),
            "squeezers": ("detectors", "squeezers"),
            "flag_threshold": ("detectors", "flag_threshold"),
        }
        for old, (section, field) in moved.items():
            if old in gateway:
                value = gateway.pop(old)
                if isinstance(value, str) and old != "flag_threshold":
                    value = _json_list(value)  # from CONSOLE_GATEWAY__MODELS: not yet parsed
                target = data.get(section)
                target = dict(target) if isinstance(target, dict) else {}
                target.setdefault(field, value)
                data = {**data, section: target}
        return {**data, "gateway": gateway}

    _context: str = PrivateAttr(default="lab")
    _operator_source: str = PrivateAttr(default="OS user")
    _config_path: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _paths_under_run_dir(self) -> Settings:
        if not self.traces.path:
            self.traces.path = str(self.run_dir / "traces")
        if not self.samples.path:
            self.samples.path = str(self.run_dir / "samples")
        return self

    @property
    def context(self) -> str:
        """The context these settings are (``--context``, ``$CONSOLE_CONTEXT``...)."""
        return self._context

    @property
    def config_path(self) -> Path | None:
        """The file they were read from (None: built from code)."""
        return self._config_path

    def in_context(self, name: str, path: Path | None) -> Settings:
        self._context, self._config_path = name, path
        return self

    @property
    def runbook_search_path(self) -> list[Path]:
        """Where runbooks are looked up, in order: shipped, the user's, the context's."""
        return [shipped.runbooks_dir(), user_runbooks_dir(), *self.runbook_dirs]

    @property
    def drill_search_path(self) -> list[Path]:
        return [shipped.drills_dir(), user_drills_dir(), *self.drill_dirs]

    @model_validator(mode="after")
    def _operator_by_identity(self) -> Settings:
        given = self.operator if "operator" in self.model_fields_set else None
        resolved = resolve_operator(self.identity, given)
        self.operator, self._operator_source = resolved.name, resolved.source
        return self

    @property
    def operator_source(self) -> str:
        """Where ``operator`` came from: ``OS user``, ``$CONSOLE_OPERATOR``, ``SSO <header>``."""
        return self._operator_source

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs; the environment overrides it, within its pins.
        return (EnvWithinFile(settings_cls, env_settings, init_settings), init_settings)

    # Derived paths -------------------------------------------------------------------------
    @property
    def audit_path(self) -> Path:
        return self.audit.path or self.run_dir / "audit" / "audit.jsonl"

    @property
    def audit_checkpoint_path(self) -> Path:
        return self.audit.checkpoint_path or self.audit_path.with_name(
            self.audit_path.name + ".head"
        )

    @property
    def runs_dir(self) -> Path:
        return self.run_dir / "runs"

    @property
    def lab_dir(self) -> Path:
        return self.run_dir / "lab"

    @property
    def audit_key_file(self) -> Path:
        """``audit.hmac_key_file``, or ``<run_dir>/secrets/audit.key``."""
        return self.audit.hmac_key_file or self.run_dir / "secrets" / "audit.key"

    def audit_key(self) -> bytes | None:
        """The HMAC key, or None when none is configured. Raises ConfigError if unreadable."""
        if self.audit.hmac_key is not None:
            key = self.audit.hmac_key.get_secret_value().encode()
            return key or None
        path = self.audit_key_file
        if self.audit.hmac_key_file is None and not path.exists():
            return None
        try:
            key = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read audit key file {path}: {exc.strerror}") from None
        return key or None


def _json_list(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # left for the field's own validation to name


def load_settings(
    config_path: Path | None = None, context: str | None = None, **overrides: Any
) -> Settings:
    """The settings of one context: the config file (``--config``, ``$CONSOLE_CONFIG``, the
    user's file, the built-in lab), its context (``context``, ``$CONSOLE_CONTEXT``, the file's
    current one), then env overrides. Errors name the file and the field."""
    source = find_config(config_path)
    config = read_config(source)
    name = choose_context(config, context)
    data = dict(config.contexts[name])
    data.setdefault("run_dir", str(context_state_dir(name)))
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**data).in_context(name, source.path)
    except ValidationError as exc:
        where = f"{source.path} (context {name})" if config.has_contexts else str(source.path)
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(root)"
            problems.append(f"{field}: {str(err['msg']).removeprefix('Value error, ')}")
        raise ConfigError(f"{where}: invalid configuration: " + "; ".join(problems)) from None
