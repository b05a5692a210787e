"""MLflow tracking over REST: experiments, runs, metrics and artifact upload, what registering a
new artifact and recording an evaluation need. A mixin of ``MlflowRegistry``, which holds the
client."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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

MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTITIES = 1000
"""``runs/log-batch``'s limits per call (MLflow's ``MAX_METRICS_PER_BATCH``,
``MAX_PARAMS_TAGS_PER_BATCH``, ``MAX_ENTITIES_PER_BATCH``)."""


class Run(BaseModel):
    """A tracking run: its artifacts live under ``artifact_uri``."""

    run_id: str
    experiment_id: str = ""
    status: str = ""
    start_time_ms: int | None = None
    artifact_uri: str = ""
    """``mlflow-artifacts:/<experiment>/<run>/artifacts`` when the server proxies artifacts."""
    tags: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    """Each metric's latest value (``data.metrics``; a value that is not a finite number, as a
    server or a writer may answer, is left out)."""


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

    async def log_batch(
        self,
        run_id: str,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        timestamp_ms: int = 0,
        step: int = 0,
    ) -> int:
        """Log metrics, params and tags in as few ``runs/log-batch`` calls as MLflow's limits
        allow (1000 metrics, 100 params, 100 tags, 1000 entities a call), one call after the
        other (in order: a failure leaves the earlier calls' entries logged). The calls made."""
        calls = 0
        for body in batches(metrics or {}, params or {}, tags or {}, timestamp_ms, step):
            await self._call("POST", "/runs/log-batch", json_body={"run_id": run_id, **body})
            calls += 1
        return calls

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


def batches(
    metrics: Mapping[str, float],
    params: Mapping[str, str],
    tags: Mapping[str, str],
    timestamp_ms: int = 0,
    step: int = 0,
) -> list[dict[str, list[dict[str, Any]]]]:
    """The ``runs/log-batch`` bodies (without ``run_id``) carrying every entry, each within
    the per-call limits."""
    entries: list[tuple[str, dict[str, Any]]] = [
        *(
            ("metrics", {"key": k, "value": float(v), "timestamp": timestamp_ms, "step": step})
            for k, v in metrics.items()
        ),
        *(("params", {"key": k, "value": v}) for k, v in params.items()),
        *(("tags", {"key": k, "value": v}) for k, v in tags.items()),
    ]
    limits = {"metrics": MAX_BATCH_METRICS, "params": MAX_BATCH_PARAMS, "tags": MAX_BATCH_TAGS}
    bodies: list[dict[str, list[dict[str, Any]]]] = []
    body: dict[str, list[dict[str, Any]]] = {}
    for kind, entry in entries:
        full = len(body.get(kind, ())) >= limits[kind]
        if full or sum(len(v) for v in body.values()) >= MAX_BATCH_ENTITIES:
            bodies.append(body)
            body = {}
        body.setdefault(kind, []).append(entry)
    if body:
        bodies.append(body)
    return bodies


def _run(raw: dict[str, Any]) -> Run:
    """``{"info": {...}, "data": {"tags": [...]}}`` as MLflow answers a run."""
    info = field(raw, "info", dict)
    data = raw.get("data")
    data = data if isinstance(data, dict) else {}
    start = info.get("start_time")
    return Run(
        run_id=str(field(info, "run_id", str)),
        experiment_id=str(info.get("experiment_id", "") or ""),
        status=str(info.get("status", "") or ""),
        start_time_ms=_integer(start),
        artifact_uri=str(info.get("artifact_uri", "") or ""),
        tags=tags_of(data.get("tags")),
        params=tags_of(data.get("params")),
        metrics=metrics_of(data.get("metrics")),
    )


def metrics_of(raw: Any) -> dict[str, float]:
    """``[{"key": k, "value": v, "timestamp": t, "step": s}, ...]`` -> ``{k: v}``: the last
    entry of a key wins (MLflow answers each key's latest value once); non-numbers and
    non-finite values are left out."""
    found: dict[str, float] = {}
    for item in raw or []:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        value = item.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            found[item["key"]] = float(value)
    return found


def _integer(value: Any) -> int | None:
    """MLflow's int64 fields come as numbers, or as strings from some servers and proxies."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
