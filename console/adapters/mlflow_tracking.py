"""MLflow tracking over REST: experiments, runs, metrics and artifact upload, what registering a
new artifact and recording an evaluation need. A mixin of ``MlflowRegistry``, which holds the
client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import BaseModel, Field

from console.adapters.http import request_json
from console.adapters.mlflow_answers import (
    already_exists,
    field,
    not_found,
    proxy_path,
    tag_list,
    tags_of,
)
from console.errors import BackendResponseError


class Run(BaseModel):
    """A tracking run: its artifacts live under ``artifact_uri``."""

    run_id: str
    experiment_id: str = ""
    status: str = ""
    artifact_uri: str = ""
    """``mlflow-artifacts:/<experiment>/<run>/artifacts`` when the server proxies artifacts."""
    tags: dict[str, str] = Field(default_factory=dict)


class MlflowTracking:
    backend = "mlflow"
    _client: httpx.AsyncClient

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def get_experiment_id(self, name: str) -> str | None:
        try:
            body = await self._call(
                "GET", "/experiments/get-by-name", params={"experiment_name": name}
            )
        except BackendResponseError as exc:
            if not_found(exc):
                return None
            raise
        return str(field(field(body, "experiment", dict), "experiment_id", str))

    async def create_experiment(self, name: str) -> str | None:
        """The new experiment's id; None when one of that name exists already."""
        try:
            body = await self._call("POST", "/experiments/create", json_body={"name": name})
        except BackendResponseError as exc:
            if already_exists(exc):
                return None
            raise
        return str(field(body, "experiment_id", str))

    async def create_run(
        self,
        experiment_id: str,
        run_name: str,
        start_time_ms: int,
        tags: dict[str, str] | None = None,
    ) -> Run:
        body = await self._call(
            "POST",
            "/runs/create",
            json_body={
                "experiment_id": experiment_id,
                "run_name": run_name,
                "start_time": start_time_ms,
                "tags": tag_list(tags),
            },
        )
        return _run(field(body, "run", dict))

    async def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        max_results: int = 100,
        order_by: Sequence[str] = (),
    ) -> list[Run]:
        """Runs matching MLflow's search syntax (``tags.k = 'v' and attributes.status = ...``)."""
        body = await self._call(
            "POST",
            "/runs/search",
            json_body={
                "experiment_ids": list(experiment_ids),
                "filter": filter_string,
                "max_results": max_results,
                "order_by": list(order_by),
            },
        )
        raw = body.get("runs", []) if isinstance(body, dict) else []
        return [_run(item) for item in raw if isinstance(item, dict)]

    async def log_metric(
        self, run_id: str, key: str, value: float, timestamp_ms: int, step: int = 0
    ) -> None:
        await self._call(
            "POST",
            "/runs/log-metric",
            json_body={
                "run_id": run_id,
                "key": key,
                "value": value,
                "timestamp": timestamp_ms,
                "step": step,
            },
        )

    async def update_run(self, run_id: str, status: str, end_time_ms: int) -> None:
        """Set a run's status (``FINISHED``, ``FAILED``, ``KILLED``) and end time."""
        await self._call(
            "POST",
            "/runs/update",
            json_body={"run_id": run_id, "status": status, "end_time": end_time_ms},
        )

    async def log_artifact(self, uri: str, content: bytes) -> None:
        """Upload ``content`` as the artifact file ``uri`` (``<run artifact_uri>/<path>``)
        through the tracking server's artifact proxy."""
        path = proxy_path(uri)
        if path is None:
            raise BackendResponseError(
                f"mlflow: artifact {uri!r} is not served by the tracking server "
                "(start it with --serve-artifacts)",
                self.backend,
            )
        await request_json(self._client, self.backend, "PUT", path, content=content)


def _run(raw: dict[str, Any]) -> Run:
    """``{"info": {...}, "data": {"tags": [...]}}`` as MLflow answers a run."""
    info = field(raw, "info", dict)
    data = raw.get("data")
    return Run(
        run_id=str(field(info, "run_id", str)),
        experiment_id=str(info.get("experiment_id", "") or ""),
        status=str(info.get("status", "") or ""),
        artifact_uri=str(info.get("artifact_uri", "") or ""),
        tags=tags_of(data.get("tags") if isinstance(data, dict) else None),
    )
