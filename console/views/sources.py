"""The clients every view reads through, built once from the settings and closed with the
app. Each is the project's own adapter (typed results, ConsoleError on failure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from console.config import Settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from console.adapters.alertmanager import AlertmanagerClient
    from console.adapters.mlflow import MlflowRegistry
    from console.adapters.policy import PolicyStore
    from console.adapters.prometheus import PrometheusClient


@dataclass
class Sources:
    settings: Settings
    prometheus: PrometheusClient
    alertmanager: AlertmanagerClient
    registry: MlflowRegistry
    redis: aioredis.Redis
    policy: PolicyStore

    @property
    def samples_path(self) -> Path:
        return Path(self.settings.samples.path)

    @property
    def traces_path(self) -> Path:
        return Path(self.settings.traces.path)

    @classmethod
    def from_settings(cls, settings: Settings, *, metrics: str = "prometheus") -> Sources:
        """Clients for ``settings``; ``metrics`` picks the query engine (``prometheus`` or
        ``victoria-metrics``: the same PromQL works on both)."""
        import redis.asyncio as aioredis

        from console.adapters.alertmanager import AlertmanagerClient
        from console.adapters.mlflow import MlflowRegistry
        from console.adapters.policy import PolicyStore
        from console.adapters.prometheus import PrometheusClient

        if metrics == "victoria-metrics":
            engine_url, timeout = settings.victoria_metrics.url, settings.victoria_metrics.timeout_s
        else:
            engine_url, timeout = settings.prometheus.url, settings.prometheus.timeout_s
        # One retry: a view refreshes every few seconds, a stuck query must not hold it.
        prometheus = PrometheusClient.connect(engine_url, timeout, backend=metrics, retries=1)
        client = aioredis.Redis.from_url(
            settings.redis.url,
            socket_timeout=settings.redis.timeout_s,
            socket_connect_timeout=settings.redis.timeout_s,
        )
        return cls(
            settings=settings,
            prometheus=prometheus,
            alertmanager=AlertmanagerClient.connect(
                settings.alertmanager.url, settings.alertmanager.timeout_s
            ),
            registry=MlflowRegistry.connect(settings.mlflow.url, settings.mlflow.timeout_s),
            redis=client,
            policy=PolicyStore(client, settings.redis.key_prefix),
        )

    async def aclose(self) -> None:
        await self.prometheus.aclose()
        await self.alertmanager.aclose()
        await self.registry.aclose()
        await self.redis.aclose()
