"""Settings: a TOML file (``--config``, ``$CONSOLE_CONFIG``, ``configs/lab.toml``) + env overrides.

Environment variables win over the file: ``CONSOLE_REDIS__URL``, ``CONSOLE_AUDIT__HMAC_KEY``,
``CONSOLE_READ_ONLY=1`` ... (prefix ``CONSOLE_``, ``__`` between section and field).
"""

from __future__ import annotations

import getpass
import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from console.errors import ConfigError
from console.urls import redact_url

DEFAULT_CONFIG = Path("configs/lab.toml")


def _checked_url(value: str, schemes: tuple[str, ...], *, host: bool) -> str:
    """``value`` if a client can use it as a URL of one of ``schemes``; else a ValueError saying
    why (the URL quoted without its credentials), so a bad value is a config error naming its
    field rather than a client's exception later."""
    shown = repr(redact_url(value)[:120])
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:  # a port that is not a number, a broken [IPv6] host
        raise ValueError(f"{shown} is not a valid URL ({exc})") from None
    if parts.scheme not in schemes or (host and not parts.hostname):
        names = [f"{s}://" for s in schemes]
        wanted = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        article = "an" if schemes[0][0] in "aeioh" else "a"
        where = " with a host" if host else ""
        raise ValueError(f"must be {article} {wanted} URL{where}, not {shown}")
    if port == 0:
        raise ValueError(f"{shown} has port 0")
    return value


def _http_url(value: str) -> str:
    return _checked_url(value, ("http", "https"), host=True)


def _redis_url(value: str) -> str:
    _checked_url(value, ("redis", "rediss", "unix"), host=False)
    database = urlsplit(value).path.strip("/")
    if not value.startswith("unix:") and database and not database.isdigit():
        raise ValueError(f"database {database[:40]!r} is not a number (redis://host:port/0)")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""An http(s) URL with a host (a backend's base URL)."""
RedisUrl = Annotated[str, AfterValidator(_redis_url)]
"""A URL redis-py accepts: redis://, rediss:// or unix://."""


class Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class RedisSection(Section):
    url: RedisUrl = "redis://127.0.0.1:16379/0"
    """Policy store and lock service."""
    timeout_s: float = 2.0
    """Per-command timeout."""
    key_prefix: str = "aml"
    """Prefix of every key the console writes (policies, locks, audit mirror)."""


class MlflowSection(Section):
    url: HttpUrl = "http://127.0.0.1:15000"
    """MLflow tracking server (the model registry)."""
    timeout_s: float = 5.0


class AlertmanagerSection(Section):
    url: HttpUrl = "http://127.0.0.1:19093"
    timeout_s: float = 5.0


class PrometheusSection(Section):
    url: HttpUrl = "http://127.0.0.1:19090"
    """PromQL endpoint the console queries: Prometheus, or any compatible engine (point it at
    ``victoria_metrics.url`` when the lab runs VictoriaMetrics)."""
    timeout_s: float = 5.0


class VictoriaMetricsSection(Section):
    """The lab's alternative query engine (``lab up --metrics victoria-metrics``)."""

    url: HttpUrl = "http://127.0.0.1:18428"
    """VictoriaMetrics single node: scrapes the lab's targets and answers PromQL."""
    vmalert_url: HttpUrl = "http://127.0.0.1:18880"
    """vmalert: evaluates ``configs/prometheus/*.yml`` against it, alerts to Alertmanager."""
    timeout_s: float = 5.0


class TracesSection(Section):
    path: str = ".aml/traces"
    """OTLP JSON-lines files, or a Tempo/Jaeger URL."""
    otlp_endpoint: HttpUrl | None = None
    """The lab gateway also exports its spans over OTLP/HTTP (JSON) to this receiver's base
    URL, e.g. ``http://127.0.0.1:4318`` (an OpenTelemetry Collector, Tempo or Jaeger v2)."""


class SamplesSection(Section):
    path: str = ".aml/samples"
    """Sample store: a directory of Parquet/JSONL files partitioned by day, or an fsspec URL."""


class AuditSection(Section):
    path: Path | None = None
    """Append-only JSONL log; default ``<run_dir>/audit/audit.jsonl``."""
    checkpoint_path: Path | None = None
    """Authenticated head (record count + last hash); default ``<audit path>.head``."""
    hmac_key: SecretStr | None = None
    """Key of the records' HMAC. Prefer ``CONSOLE_AUDIT__HMAC_KEY`` or ``hmac_key_file``."""
    hmac_key_file: Path | None = None
    """File holding the HMAC key (the lab writes one under the run dir)."""
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


SqueezerName = Literal["bits2", "median2", "median3"]


class ModelsSection(Section):
    """The models under watch."""

    served: list[str] = Field(default_factory=lambda: ["digits"], min_length=1)
    """Registry models served to clients (each one's ``champion`` alias): the Models view,
    replay's default and the lab gateway all read this list."""


class DetectorsSection(Section):
    """How inputs are scored, the same wherever they are scored (a gateway, replay)."""

    squeezers: list[SqueezerName] = Field(default_factory=lambda: list[SqueezerName](["bits2"]))
    """Feature-squeezing transforms. Median smoothing erases strokes on 8x8 digits and flags
    about half of clean inputs, so the lab uses bit-depth reduction alone (measured in
    docs/architecture.md); add medians for larger images."""
    flag_threshold: float = Field(default=0.5, ge=0, le=1)
    """Detector score at or above which an input is flagged (and, at a gateway, sampled)."""


class ClientStateSection(Section):
    """Where the guarded gateway serves its per-client state (``/aml/clients``): who is
    counted as ``other`` when every client label slot is held."""

    url: str | None = None
    """Default: the lab gateway's ``gateway.url``."""
    timeout_s: float = Field(default=2.0, gt=0)


class GatewaySection(Section):
    """The lab's guarded inference gateway (Open Inference / V2 protocol). It serves
    ``models.served`` and scores with ``[detectors]``."""

    url: HttpUrl = "http://127.0.0.1:18080"
    alias_poll_s: float = Field(default=2.0, gt=0)
    """How often the gateway re-reads the aliases (a rollback applies within this)."""
    policy_cache_s: float = Field(default=0.5, ge=0, le=1.0)
    """Policy (block, budget) cache; changes also arrive by pub/sub. At most 1 s."""
    redis_failure_mode: Literal["open", "closed"] = "open"
    """When Redis is down: serve (open) or refuse with 503 (closed)."""
    sample_fraction: float = Field(default=0.01, ge=0, le=1)
    """Fraction of unflagged requests sampled too."""
    hash_only: bool = False
    """Store only the sha256 of inputs, never the inputs (personal data)."""
    retention_days: int = Field(default=7, ge=1)
    """Sample-store partitions older than this are deleted."""
    default_qpm: int | None = None
    """Budget for clients without one in the policy store (None: unlimited)."""
    pseudonym_key: SecretStr | None = None
    """Secret of the HMAC that turns a bearer API key into a client id (``key-<16 hex>``).
    Prefer ``CONSOLE_GATEWAY__PSEUDONYM_KEY`` or ``pseudonym_key_file``."""
    pseudonym_key_file: Path | None = None
    """Default ``<run_dir>/secrets/pseudonym.key``, made (0600) by the first gateway to start."""
    client_labels: int = Field(default=200, ge=1, le=100_000)
    """Clients with a ``client`` label of their own; the slots go to the riskiest clients,
    the others are counted as ``other``."""
    client_label_idle_s: float = Field(default=600.0, gt=0)
    """A client idle this long gives its slot up to anyone."""
    body_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """A request body must arrive within this (else 408): a client that sends its headers and
    then trickles or never sends its body does not hold the gateway."""
    max_pending_bodies: int = Field(default=256, ge=1)
    """Request bodies read at once; beyond that a request is refused at once with 503."""


class TrafficSection(Section):
    """Benign clients ``lab up`` runs against the gateway (service ``traffic``)."""

    url: HttpUrl = "http://127.0.0.1:18081"
    """Where the generator serves ``/metrics``: what the benign clients saw (requests by
    outcome, latency), scraped beside the gateway's own view."""
    clients: int = Field(default=6, ge=1, le=200)
    rate: float = Field(default=1.0, gt=0, le=100)
    """Mean requests per second of each client (spread log-normally between clients)."""
    seed: int = 7
    duration_s: float = Field(default=86_400.0, gt=0)
    """The generator stops by itself after this; ``lab up`` starts it again."""
    model: str | None = None
    """Model the clients query (default: the gateway's first)."""


class LabSection(Section):
    services: list[str] = Field(
        default_factory=lambda: [
            "redis",
            "mlflow",
            "alertmanager",
            "prometheus",
            "gateway",
            "traffic",
        ]
    )
    """Services ``lab up`` starts when ``--services`` is not given."""
    seed_model: str = "digits"
    """Model the lab registers (two versions, aliases champion and previous)."""
    mlflow_start_timeout_s: float = 90.0


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
    operator: str = Field(default_factory=lambda: _default_operator())
    """Who acts; written into every audit record."""
    read_only: bool = False
    """Refuse every action; plans and dry runs still work."""
    run_dir: Path = Path(".aml")
    """Data, pids, logs, run state and the default audit log."""
    runbook_dirs: list[Path] = Field(default_factory=lambda: [Path("runbooks")])
    drill_dirs: list[Path] = Field(default_factory=lambda: [Path("configs/drills")])
    """Game-day drill scenarios (``drill list``); reports go to ``<run_dir>/drills/``."""

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

    @field_validator("operator")
    @classmethod
    def _operator_is_plain(cls, value: str) -> str:
        if not value or len(value) > 128 or not value.isprintable():
            raise ValueError("operator must be 1-128 printable characters")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs; the environment overrides it.
        return (env_settings, init_settings)

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

    def audit_key(self) -> bytes | None:
        """The HMAC key, or None when none is configured. Raises ConfigError if unreadable."""
        if self.audit.hmac_key is not None:
            key = self.audit.hmac_key.get_secret_value().encode()
            return key or None
        if self.audit.hmac_key_file is not None:
            try:
                key = self.audit.hmac_key_file.read_bytes().strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read audit key file {self.audit.hmac_key_file}: {exc.strerror}"
                ) from None
            return key or None
        return None


def _json_list(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # left for the field's own validation to name


def _default_operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def load_settings(config_path: Path | None = None, **overrides: Any) -> Settings:
    """Read the config file (if any), apply env overrides, validate. Errors name file and field."""
    path = config_path
    if path is None and os.environ.get("CONSOLE_CONFIG"):
        path = Path(os.environ["CONSOLE_CONFIG"])
    explicit = path is not None
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            if explicit:
                raise ConfigError(f"config file not found: {path}")
        else:
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: cannot read: {exc}") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = str(path) if path else "environment"
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(root)"
            problems.append(f"{field}: {str(err['msg']).removeprefix('Value error, ')}")
        raise ConfigError(f"{where}: invalid configuration: " + "; ".join(problems)) from None
