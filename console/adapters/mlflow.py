"""MLflow model registry over REST: models, versions, aliases, tags; and the tracking calls
that registering a new artifact needs (experiments, runs, artifact upload).

Plain httpx rather than the mlflow client: the client costs ~2 s to import and its default
retries run for minutes, both wrong for an incident console.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Sequence
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, BaseModel, Field

from console.adapters.http import make_client, request_json
from console.endpoints import HttpClientOptions
from console.errors import ArtifactRefused, BackendResponseError, ParameterError

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+-]*")


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise ParameterError(
            f"model name {str(name)[:40]!r} is not acceptable: 1-128 letters, digits, . _ -"
        )
    return name


def check_alias(alias: str) -> str:
    # MLflow reserves aliases of the form v<digits> for version references.
    reserved = isinstance(alias, str) and alias[:1] in "vV" and alias[1:].isdigit()
    if not isinstance(alias, str) or not ALIAS.fullmatch(alias) or reserved:
        raise ParameterError(f"alias {str(alias)[:40]!r} is not acceptable")
    return alias


def _as_value_error(check: Callable[[str], str]) -> Callable[[str], str]:
    def validate(value: str) -> str:
        try:
            return check(value)
        except ParameterError as exc:  # pydantic reports ValueErrors with their field path
            raise ValueError(str(exc)) from None

    return validate


ModelName = Annotated[str, AfterValidator(_as_value_error(check_model_name))]
AliasName = Annotated[str, AfterValidator(_as_value_error(check_alias))]


class ModelVersion(BaseModel):
    name: str
    version: str
    source: str = ""
    run_id: str = ""
    status: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)


class RegisteredModel(BaseModel):
    name: str
    aliases: dict[str, str] = Field(default_factory=dict)
    """alias -> version"""
    description: str = ""


class Run(BaseModel):
    """A tracking run: its artifacts live under ``artifact_uri``."""

    run_id: str
    experiment_id: str = ""
    status: str = ""
    artifact_uri: str = ""
    """``mlflow-artifacts:/<experiment>/<run>/artifacts`` when the server proxies artifacts."""
    tags: dict[str, str] = Field(default_factory=dict)


class MlflowRegistry:
    backend = "mlflow"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @classmethod
    def connect(
        cls, url: str, timeout_s: float, *, options: HttpClientOptions | None = None
    ) -> MlflowRegistry:
        """With ``options``' credentials, TLS and proxy (``[mlflow]``, which also takes the
        mlflow client's ``MLFLOW_TRACKING_*`` variables)."""
        return cls(make_client(url, timeout_s, options=options, backend=cls.backend))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await request_json(self._client, self.backend, method, API + path, **kwargs)

    async def server_version(self) -> str | None:
        """The server's version (``/version``, plain text); None when it does not answer one
        (an older server, a proxy that passes only the API). Best effort: never raises."""
        try:
            response = await self._client.get("/version")
        except (httpx.HTTPError, ssl.SSLError):
            return None
        text = response.text.strip()[:40] if response.status_code == 200 else ""
        return text if _VERSION.fullmatch(text) else None

    async def get_model(self, name: str) -> RegisteredModel | None:
        check_model_name(name)
        try:
            body = await self._call("GET", "/registered-models/get", params={"name": name})
        except BackendResponseError as exc:
            if _not_found(exc):
                return None
            raise
        return _registered_model(_field(body, "registered_model", dict), name)

    async def require_model(self, name: str) -> RegisteredModel:
        model = await self.get_model(name)
        if model is None:
            raise ParameterError(f"model {name!r} is not in the registry")
        return model

    async def get_version(self, name: str, version: str) -> ModelVersion | None:
        check_model_name(name)
        try:
            body = await self._call(
                "GET", "/model-versions/get", params={"name": name, "version": str(version)}
            )
        except BackendResponseError as exc:
            if _not_found(exc):
                return None
            raise
        return _version(_field(body, "model_version", dict))

    async def list_versions(self, name: str, max_results: int = 200) -> list[ModelVersion]:
        check_model_name(name)
        body = await self._call(
            "GET",
            "/model-versions/search",
            params={"filter": f"name='{name}'", "max_results": max_results},
        )
        raw = body.get("model_versions", []) if isinstance(body, dict) else []
        versions = [_version(item) for item in raw if isinstance(item, dict)]
        return sorted(versions, key=lambda v: int(v.version) if v.version.isdigit() else 0)

    async def download_artifact(
        self, name: str, version: str, max_bytes: int = MAX_ARTIFACT_BYTES
    ) -> bytes:
        """The bytes of a version's artifact, through the tracking server's artifact proxy.

        Raises ArtifactRefused (``download_failed``: not proxied, an error status, a dropped
        connection; ``too_large``: over ``max_bytes``, read no further) and AdapterError when
        the registry does not answer. The caller checks the sha256 (``model_artifacts``).
        """
        check_model_name(name)
        body = await self._call(
            "GET",
            "/model-versions/get-download-uri",
            params={"name": name, "version": str(version)},
        )
        uri = str(body.get("artifact_uri", "")) if isinstance(body, dict) else ""
        path = _proxy_path(uri)
        if path is None:
            raise ArtifactRefused(
                "download_failed",
                f"artifact {uri!r} is not served by the tracking server's artifact proxy",
            )
        try:
            async with self._client.stream("GET", path) as response:
                if response.status_code != 200:
                    raise ArtifactRefused(
                        "download_failed", f"artifact {uri}: HTTP {response.status_code}"
                    )
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ArtifactRefused(
                            "too_large", f"artifact {uri} is over {max_bytes} bytes"
                        )
                    chunks.append(chunk)
        except (httpx.HTTPError, ssl.SSLError) as exc:
            reason = (str(exc) or type(exc).__name__).splitlines()[0][:300]
            raise ArtifactRefused("download_failed", f"artifact {uri}: {reason}") from None
        return b"".join(chunks)

    async def get_alias(self, name: str, alias: str) -> str | None:
        model = await self.get_model(name)
        if model is None:
            return None
        return model.aliases.get(alias)

    async def set_alias(self, name: str, alias: str, version: str) -> None:
        check_model_name(name)
        check_alias(alias)
        await self._call(
            "POST",
            "/registered-models/alias",
            json_body={"name": name, "alias": alias, "version": str(version)},
        )

    async def delete_alias(self, name: str, alias: str) -> None:
        check_model_name(name)
        check_alias(alias)
        await self._call(
            "DELETE", "/registered-models/alias", json_body={"name": name, "alias": alias}
        )

    async def create_model(
        self, name: str, description: str = "", tags: dict[str, str] | None = None
    ) -> RegisteredModel | None:
        """The new registered model; None when one of that name exists already."""
        check_model_name(name)
        try:
            body = await self._call(
                "POST",
                "/registered-models/create",
                json_body={"name": name, "description": description, "tags": _tag_list(tags)},
            )
        except BackendResponseError as exc:
            if _already_exists(exc):
                return None
            raise
        return _registered_model(_field(body, "registered_model", dict), name)

    async def create_version(
        self,
        name: str,
        source: str,
        run_id: str,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> ModelVersion:
        """A new version of the existing model ``name`` whose artifact is ``source``."""
        check_model_name(name)
        body = await self._call(
            "POST",
            "/model-versions/create",
            json_body={
                "name": name,
                "source": source,
                "run_id": run_id,
                "description": description,
                "tags": _tag_list(tags),
            },
        )
        return _version(_field(body, "model_version", dict))

    async def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Set each of ``tags`` on the version (one call per tag, as the REST API has it)."""
        check_model_name(name)
        for key, value in tags.items():
            await self._call(
                "POST",
                "/model-versions/set-tag",
                json_body={"name": name, "version": str(version), "key": key, "value": value},
            )

    async def get_experiment_id(self, name: str) -> str | None:
        try:
            body = await self._call(
                "GET", "/experiments/get-by-name", params={"experiment_name": name}
            )
        except BackendResponseError as exc:
            if _not_found(exc):
                return None
            raise
        return str(_field(_field(body, "experiment", dict), "experiment_id", str))

    async def create_experiment(self, name: str) -> str | None:
        """The new experiment's id; None when one of that name exists already."""
        try:
            body = await self._call("POST", "/experiments/create", json_body={"name": name})
        except BackendResponseError as exc:
            if _already_exists(exc):
                return None
            raise
        return str(_field(body, "experiment_id", str))

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
                "tags": _tag_list(tags),
            },
        )
        return _run(_field(body, "run", dict))

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
        path = _proxy_path(uri)
        if path is None:
            raise BackendResponseError(
                f"mlflow: artifact {uri!r} is not served by the tracking server "
                "(start it with --serve-artifacts)",
                self.backend,
            )
        await request_json(self._client, self.backend, "PUT", path, content=content)


def _not_found(exc: BackendResponseError) -> bool:
    # Only MLflow's own answer counts: a 404 page from something else is a wrong URL.
    return "RESOURCE_DOES_NOT_EXIST" in str(exc)


def _already_exists(exc: BackendResponseError) -> bool:
    return "RESOURCE_ALREADY_EXISTS" in str(exc)


def _proxy_path(uri: str) -> str | None:
    """``mlflow-artifacts:/1/<run>/artifacts/x`` -> the server's artifact proxy path; None for
    an artifact the tracking server does not serve (a local path, s3://...)."""
    parts = urlsplit(uri)
    if parts.scheme != "mlflow-artifacts":
        return None
    return f"{ARTIFACTS_API}/{parts.path.lstrip('/')}"


def _tag_list(tags: dict[str, str] | None) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in (tags or {}).items()]


def _tags(raw: Any) -> dict[str, str]:
    return {str(t.get("key")): str(t.get("value")) for t in raw or [] if isinstance(t, dict)}


def _field(body: Any, key: str, kind: type) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get(key), kind):
        raise BackendResponseError(f"mlflow: answer has no {key!r}", "mlflow")
    return body[key]


def _registered_model(raw: dict[str, Any], name: str) -> RegisteredModel:
    aliases = {
        str(item.get("alias")): str(item.get("version"))
        for item in raw.get("aliases", []) or []
        if isinstance(item, dict)
    }
    return RegisteredModel(
        name=str(raw.get("name", name)),
        aliases=aliases,
        description=str(raw.get("description", "") or ""),
    )


def _version(raw: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        name=str(raw.get("name", "")),
        version=str(raw.get("version", "")),
        source=str(raw.get("source", "") or ""),
        run_id=str(raw.get("run_id", "") or ""),
        status=str(raw.get("status", "") or ""),
        tags=_tags(raw.get("tags")),
        aliases=[str(a) for a in raw.get("aliases", []) or []],
    )


def _run(raw: dict[str, Any]) -> Run:
    """``{"info": {...}, "data": {"tags": [...]}}`` as MLflow answers a run."""
    info = _field(raw, "info", dict)
    data = raw.get("data")
    return Run(
        run_id=str(_field(info, "run_id", str)),
        experiment_id=str(info.get("experiment_id", "") or ""),
        status=str(info.get("status", "") or ""),
        artifact_uri=str(info.get("artifact_uri", "") or ""),
        tags=_tags(data.get("tags") if isinstance(data, dict) else None),
    )
