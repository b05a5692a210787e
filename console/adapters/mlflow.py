"""MLflow model registry over REST: models, versions, aliases, tags; and the tracking calls
that registering a new artifact needs (experiments, runs, artifact upload).

Plain httpx rather than the mlflow client: the client costs ~2 s to import and its default
retries run for minutes, both wrong for an incident console.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from typing import Annotated, Any

import httpx
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from console.adapters.http import make_client, request_json
from console.adapters.mlflow_answers import (
    API as API,
)
from console.adapters.mlflow_answers import (
    already_exists,
    field,
    not_found,
    proxy_path,
    sibling_uri,
    tag_list,
    tags_of,
)
from console.adapters.mlflow_tracking import MlflowTracking
from console.endpoints import HttpClientOptions
from console.errors import ArtifactRefused, BackendResponseError, ParameterError

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


def check_version_number(value: object) -> str:
    """A version as MLflow numbers them: digits only (an alias is not a version here)."""
    text = str(value)
    if not text.isdigit() or len(text) > 9:
        raise ParameterError(f"version {text[:20]!r} is not a version number")
    return text


ModelName = Annotated[str, AfterValidator(_as_value_error(check_model_name))]
VersionNumber = Annotated[str, BeforeValidator(_as_value_error(check_version_number))]
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


class MlflowRegistry(MlflowTracking):
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
            if not_found(exc):
                return None
            raise
        return _registered_model(field(body, "registered_model", dict), name)

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
            if not_found(exc):
                return None
            raise
        return _version(field(body, "model_version", dict))

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
        found = await self.download_uri(await self.artifact_uri(name, version), max_bytes)
        if found is None:
            raise ArtifactRefused("download_failed", "the artifact is not on the server")
        return found

    async def download_uri(
        self, uri: str, max_bytes: int, *, missing_ok: bool = False
    ) -> bytes | None:
        """The bytes of the artifact file ``uri``; with ``missing_ok``, None when absent."""
        path = proxy_path(uri)
        if path is None:
            raise ArtifactRefused(
                "download_failed",
                f"artifact {uri!r} is not served by the tracking server's artifact proxy",
            )
        try:
            async with self._client.stream("GET", path) as response:
                if missing_ok and await _missing_file(response):
                    return None
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

    async def artifact_uri(self, name: str, version: str) -> str:
        """The URI of a version's artifact (``get-download-uri``)."""
        check_model_name(name)
        body = await self._call(
            "GET",
            "/model-versions/get-download-uri",
            params={"name": name, "version": str(version)},
        )
        return str(body.get("artifact_uri", "")) if isinstance(body, dict) else ""

    async def download_sibling(
        self, name: str, version: str, suffix: str, max_bytes: int
    ) -> bytes | None:
        """The bytes of the file ``<artifact>{suffix}`` beside a version's artifact (its
        signature, ``.sig``); None when the server has no such file. Raises ArtifactRefused
        (``download_failed``, ``too_large``) like ``download_artifact``, and for an artifact URI
        with a query, a fragment or a host (``sibling_uri``)."""
        uri = sibling_uri(await self.artifact_uri(name, version), suffix)
        return await self.download_uri(uri, max_bytes, missing_ok=True)

    async def upload_sibling(self, name: str, version: str, suffix: str, content: bytes) -> str:
        """Upload ``content`` as ``<artifact>{suffix}`` beside a version's artifact; its URI.
        ArtifactRefused for an artifact URI with a query, a fragment or a host: its sibling
        would be the artifact itself."""
        uri = sibling_uri(await self.artifact_uri(name, version), suffix)
        await self.log_artifact(uri, content)
        return uri

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
                json_body={"name": name, "description": description, "tags": tag_list(tags)},
            )
        except BackendResponseError as exc:
            if already_exists(exc):
                return None
            raise
        return _registered_model(field(body, "registered_model", dict), name)

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
                "tags": tag_list(tags),
            },
        )
        return _version(field(body, "model_version", dict))

    async def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Set each of ``tags`` on the version (one call per tag, as the REST API has it)."""
        check_model_name(name)
        for key, value in tags.items():
            await self._call(
                "POST",
                "/model-versions/set-tag",
                json_body={"name": name, "version": str(version), "key": key, "value": value},
            )


async def _missing_file(response: httpx.Response) -> bool:
    """No such file: a 404, or the 500 naming it that a local artifact store answers with."""
    if response.status_code == 500:
        text = (await response.aread())[:2000].decode(errors="replace")
        return "No such file" in text or "FileNotFoundError" in text
    return response.status_code == 404


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
        tags=tags_of(raw.get("tags")),
        aliases=[str(a) for a in raw.get("aliases", []) or []],
    )
