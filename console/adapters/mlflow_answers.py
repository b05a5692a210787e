"""MLflow's REST answers read into plain values, and the artifact proxy's paths: shared by the
registry (``mlflow.py``) and tracking (``mlflow_tracking.py``) calls."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from console.errors import ArtifactRefused, BackendResponseError

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"


def not_found(exc: BackendResponseError) -> bool:
    # Only MLflow's own answer counts: a 404 page from something else is a wrong URL.
    return "RESOURCE_DOES_NOT_EXIST" in str(exc)


def already_exists(exc: BackendResponseError) -> bool:
    return "RESOURCE_ALREADY_EXISTS" in str(exc)


def tag_list(tags: dict[str, str] | None) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in (tags or {}).items()]


def tags_of(raw: Any) -> dict[str, str]:
    return {str(t.get("key")): str(t.get("value")) for t in raw or [] if isinstance(t, dict)}


def field(body: Any, key: str, kind: type) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get(key), kind):
        raise BackendResponseError(f"mlflow: answer has no {key!r}", "mlflow")
    return body[key]


def proxy_path(uri: str) -> str | None:
    """``mlflow-artifacts:/1/<run>/artifacts/x`` -> the server's artifact proxy path; None for
    an artifact the tracking server does not serve (a local path, s3://...). ArtifactRefused
    (``download_failed``) for a URI with a query, a fragment or a host: the proxy path would
    drop them, so ``x?y`` and ``x#`` would name the file ``x`` (and ``x?y`` + ``.sig`` too)."""
    parts = urlsplit(uri)
    if parts.scheme != "mlflow-artifacts":
        return None
    if "?" in uri or "#" in uri or parts.netloc:
        raise ArtifactRefused(
            "download_failed",
            f"artifact uri {uri[:200]!r} has a query, a fragment or a host: not an artifact file",
        )
    return f"{ARTIFACTS_API}/{parts.path.lstrip('/')}"


def sibling_uri(uri: str, suffix: str) -> str:
    """The URI of the file ``<artifact>{suffix}`` beside the artifact ``uri`` (its signature,
    ``.sig``), built from the path alone. ArtifactRefused as ``proxy_path`` for a URI with a
    query, a fragment or a host, or one the proxy does not serve."""
    if proxy_path(uri) is None:
        raise ArtifactRefused(
            "download_failed",
            f"artifact {uri[:200]!r} is not served by the tracking server's artifact proxy",
        )
    return f"mlflow-artifacts:{urlsplit(uri).path}{suffix}"
