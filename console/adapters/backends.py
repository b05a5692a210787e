"""The one set of clients for the real systems, built from the settings and shared by views,
runbooks, replay and drills.

Each client connects on first use, so a runbook that only touches Redis runs while MLflow is
down, and a view that never reads the registry never opens a connection to it. A client can
also be given ready-made (a test's stand-in, a recorded harness); ``aclose`` closes only what
this object opened itself.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from console.config import Settings

if TYPE_CHECKING:
    import httpx
    import redis.asyncio as aioredis

    from console.adapters.alertmanager import AlertmanagerClient
    from console.adapters.approval_store import ApprovalStore
    from console.adapters.gateway_state import GatewayStateClient
    from console.adapters.locks import LockService
    from console.adapters.mlflow import MlflowRegistry
    from console.adapters.policy import PolicyStore
    from console.adapters.prometheus import PrometheusClient
    from console.adapters.traces import TraceQueryClient
    from console.endpoints import HttpEndpoint

MetricsEngine = Literal["prometheus", "victoria-metrics"]


class _Closeable(Protocol):
    def aclose(self) -> Awaitable[None]: ...


C = TypeVar("C", bound=_Closeable)


class Backends:
    """Lazily connecting adapters for one set of settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: MetricsEngine = "prometheus",
        prometheus_retries: int = 1,
        prometheus: PrometheusClient | None = None,
        alertmanager: AlertmanagerClient | None = None,
        registry: MlflowRegistry | None = None,
        redis: aioredis.Redis | None = None,
        policy: PolicyStore | None = None,
        http: httpx.AsyncClient | None = None,
        gateway_state: GatewayStateClient | None = None,
    ) -> None:
        """``metrics`` picks the query engine (the same PromQL works on both);
        ``prometheus_retries``: one by default, since a view refreshes every few seconds and a
        stuck query must not hold it."""
        self.settings = settings
        self.metrics: MetricsEngine = metrics
        self._prometheus_retries = prometheus_retries
        self._prometheus = prometheus
        self._alertmanager = alertmanager
        self._registry = registry
        self._redis = redis
        self._policy = policy
        self._http = http
        self._gateway_state = gateway_state
        self._trace_store: TraceQueryClient | None = None
        self._owned: list[_Closeable] = []

    @property
    def prometheus(self) -> PrometheusClient:
        if self._prometheus is None:
            from console.adapters.prometheus import PrometheusClient

            cfg: HttpEndpoint = (
                self.settings.victoria_metrics
                if self.metrics == "victoria-metrics"
                else self.settings.prometheus
            )
            self._prometheus = self._own(
                PrometheusClient.connect(
                    cfg.url,
                    cfg.timeout_s,
                    backend=self.metrics,
                    retries=self._prometheus_retries,
                    options=cfg,
                )
            )
        return self._prometheus

    @property
    def alertmanager(self) -> AlertmanagerClient:
        if self._alertmanager is None:
            from console.adapters.alertmanager import AlertmanagerClient

            cfg = self.settings.alertmanager
            self._alertmanager = self._own(
                AlertmanagerClient.connect(cfg.url, cfg.timeout_s, options=cfg)
            )
        return self._alertmanager

    @property
    def registry(self) -> MlflowRegistry:
        if self._registry is None:
            from console.adapters.mlflow import MlflowRegistry

            cfg = self.settings.mlflow
            self._registry = self._own(MlflowRegistry.connect(cfg.url, cfg.timeout_s, options=cfg))
        return self._registry

    @property
    def redis(self) -> aioredis.Redis:
        """``[redis]``'s client: its credentials and TLS (``console.adapters.redis_client``).
        Raises ConfigError when the password file cannot be read."""
        if self._redis is None:
            from console.adapters.redis_client import async_client

            self._redis = self._own(async_client(self.settings.redis))
        return self._redis

    @property
    def policy(self) -> PolicyStore:
        if self._policy is not None:
            return self._policy
        from console.adapters.policy import PolicyStore

        return PolicyStore(self.redis, self.settings.redis.key_prefix)

    @property
    def locks(self) -> LockService:
        from console.adapters.locks import LockService

        return LockService(self.redis, self.settings.redis.key_prefix)

    @property
    def approvals(self) -> ApprovalStore:
        from console.adapters.approval_store import ApprovalStore

        return ApprovalStore(self.redis, self.settings.redis.key_prefix)

    @property
    def http(self) -> httpx.AsyncClient:
        """For the templated HTTP action: its own timeout, never following redirects (a
        redirect could leave the allowed hosts), and no proxy but ``http_action.proxy``: never
        one from the environment (``trust_env=False``), which would receive every call and its
        tokens. That also leaves out ``.netrc`` and ``SSL_CERT_FILE``. Each host of
        ``http_action.auth`` gets its credentials and TLS (``adapters.http.per_host_client``)."""
        if self._http is None:
            from console.adapters.http import per_host_client

            cfg = self.settings.http_action
            self._http = self._own(per_host_client(cfg.timeout_s, cfg.proxy or None, cfg.auth))
        return self._http

    @property
    def gateway_state(self) -> GatewayStateClient:
        """The guarded gateway's per-client state (``[client_state]``)."""
        if self._gateway_state is None:
            from console.adapters.gateway_state import GatewayStateClient

            cfg = self.settings.client_state
            url = cfg.url or self.settings.gateway.url
            self._gateway_state = self._own(GatewayStateClient(url, cfg.timeout_s, options=cfg))
        return self._gateway_state

    @property
    def trace_store(self) -> TraceQueryClient:
        """Tempo or Jaeger at ``traces.path`` (a URL), with ``[traces]``'s credentials and TLS."""
        if self._trace_store is None:
            from console.adapters.traces import TraceQueryClient

            cfg = self.settings.traces
            self._trace_store = self._own(
                TraceQueryClient(cfg.query_api, cfg.path, cfg.timeout_s, retries=1, options=cfg)
            )
        return self._trace_store

    @property
    def samples_path(self) -> Path:
        return Path(self.settings.samples.path)

    @property
    def traces_path(self) -> Path:
        return Path(self.settings.traces.path)

    def _own(self, client: C) -> C:
        self._owned.append(client)
        return client

    async def aclose(self) -> None:
        owned, self._owned = self._owned, []
        for client in reversed(owned):
            await client.aclose()
