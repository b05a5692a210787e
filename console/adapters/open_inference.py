"""An Open Inference (V2) protocol client (KServe, Triton, MLServer, the lab gateway): one
``POST /v2/models/{name}/versions/{version}/infer`` per batch of rows.

The served graph must be the registry's ONNX contract: input ``input`` FP32 ``[N, 64]``, outputs
``probabilities`` FP32 ``[N, classes]`` and ``label`` INT64 ``[N]`` (or ``[N, 1]``, as MLServer's
NumPy codec sends it; ``label`` may be left out: the arg max of the probabilities is taken).
Errors are ``AdapterError``s: connect failures and timeouts ``BackendUnavailable``, an error
status or a body that is not the expected JSON ``BackendResponseError``, each naming the URL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import numpy as np
from numpy.typing import NDArray

from console.adapters.http import make_client, request_json
from console.endpoints import HttpClientOptions
from console.errors import BackendResponseError, ConfigError

CLIENT_ID = "aml-replay"
"""Sent as ``X-Client-Id``: gateways that require a client identity (the lab's) see replay
traffic as this client."""


@dataclass(frozen=True)
class V2Prediction:
    labels: NDArray[np.int64]
    """[N]"""
    probabilities: NDArray[np.float32]
    """[N, classes]"""
    model_version: str | None
    """What the server says it ran (None if it did not say)."""


def check_endpoint(url: str) -> str:
    """``url`` if it is an http(s) URL with a host and nothing after the port; else
    ConfigError."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"endpoint {url[:80]!r} is not an http(s)://host:port URL")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ConfigError(
            f"endpoint {url[:80]!r} must be the server's base URL (http://host:port), "
            "without a path: /v2/models/... is added per request"
        )
    return url.strip().rstrip("/")


class OpenInferenceClient:
    backend = "v2 endpoint"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @classmethod
    def connect(
        cls, url: str, timeout_s: float, *, options: HttpClientOptions | None = None
    ) -> OpenInferenceClient:
        """``options``: the server's credentials, TLS and proxy (``[models.endpoints]``)."""
        return cls(
            make_client(
                check_endpoint(url),
                timeout_s,
                options=options,
                backend=cls.backend,
                headers={"X-Client-Id": CLIENT_ID},
            )
        )

    @property
    def url(self) -> str:
        return str(self._client.base_url).rstrip("/")

    async def aclose(self) -> None:
        await self._client.aclose()

    async def infer(self, model: str, version: str, rows: NDArray[np.float32]) -> V2Prediction:
        """Labels and probabilities of ``rows`` ([N, width] float32) from ``model`` ``version``."""
        n, width = int(rows.shape[0]), int(rows.shape[1])
        body = {
            "id": uuid.uuid4().hex,
            "inputs": [
                {
                    "name": "input",
                    "shape": [n, width],
                    "datatype": "FP32",
                    # float64 holds every float32 exactly: the server sees the same numbers.
                    "data": rows.astype(np.float64).reshape(-1).tolist(),
                }
            ],
            "outputs": [{"name": "label"}, {"name": "probabilities"}],
        }
        path = f"/v2/models/{quote(model, safe='')}/versions/{quote(version, safe='')}/infer"
        answer = await request_json(self._client, self.backend, "POST", path, json_body=body)
        return self._parse(answer, n, f"{self.url}{path}")

    def _parse(self, answer: Any, rows: int, where: str) -> V2Prediction:
        def bad(problem: str) -> BackendResponseError:
            return BackendResponseError(f"{self.backend} {where}: {problem}", self.backend)

        if not isinstance(answer, dict) or not isinstance(answer.get("outputs"), list):
            raise bad("the answer has no 'outputs' list")
        tensors = {str(t.get("name")): t for t in answer["outputs"] if isinstance(t, dict)}
        if "probabilities" not in tensors:
            raise bad(f"no 'probabilities' output (got {sorted(tensors)})")
        probabilities = _tensor(tensors["probabilities"], np.float32, bad)
        if probabilities.ndim != 2 or probabilities.shape[0] != rows:
            raise bad(f"probabilities of shape {list(probabilities.shape)} for {rows} rows")
        if "label" in tensors:
            labels = _tensor(tensors["label"], np.int64, bad).reshape(-1)
            if labels.shape[0] != rows:
                raise bad(f"{labels.shape[0]} labels for {rows} rows")
        else:
            labels = probabilities.argmax(axis=1).astype(np.int64)
        version = answer.get("model_version")
        return V2Prediction(labels, probabilities, None if version is None else str(version))


def _tensor(raw: dict[str, Any], dtype: type[np.generic], bad: Any) -> NDArray[Any]:
    shape, data = raw.get("shape"), raw.get("data")
    if not isinstance(shape, list) or not isinstance(data, list):
        raise bad(f"output {raw.get('name')!r} has no shape or data")
    try:
        values = np.asarray(data, dtype=dtype)
        return values.reshape([int(d) for d in shape])
    except (TypeError, ValueError):
        raise bad(f"output {raw.get('name')!r} does not hold {shape} numbers") from None


__all__ = ["CLIENT_ID", "OpenInferenceClient", "V2Prediction", "check_endpoint"]
