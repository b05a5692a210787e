"""The V2 client's answers to faults a real server cannot be made to show on demand (a body that
is not JSON, a 5xx page, a hang, a malformed answer), through httpx.MockTransport; the real
path is tested against the gateway in test_replay_endpoint.py."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from console.adapters.open_inference import CLIENT_ID, OpenInferenceClient, check_endpoint
from console.errors import BackendResponseError, BackendUnavailable, ConfigError

ROWS = np.zeros((3, 64), dtype=np.float32)


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> OpenInferenceClient:
    transport = httpx.MockTransport(handler)
    return OpenInferenceClient(
        httpx.AsyncClient(
            base_url="http://v2.test", transport=transport, headers={"X-Client-Id": CLIENT_ID}
        )
    )


def _answer(probabilities: list[list[float]], **extra: object) -> dict[str, object]:
    n = len(probabilities)
    return {
        "model_name": "digits",
        "outputs": [
            {
                "name": "probabilities",
                "shape": [n, len(probabilities[0])],
                "datatype": "FP32",
                "data": [p for row in probabilities for p in row],
            }
        ],
        **extra,
    }


async def test_a_good_answer_and_what_was_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        probs = [[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]
        return httpx.Response(200, json=_answer(probs, model_version="2"))

    client = _client(handler)
    got = await client.infer("digits", "2", ROWS)
    await client.aclose()
    assert got.labels.tolist() == [1, 0, 1]  # no label output: the arg max
    assert got.model_version == "2" and got.probabilities.shape == (3, 2)
    (request,) = seen
    assert request.url.path == "/v2/models/digits/versions/2/infer"
    assert request.headers["x-client-id"] == CLIENT_ID
    body = json.loads(request.content)
    assert body["inputs"][0]["shape"] == [3, 64] and body["inputs"][0]["datatype"] == "FP32"
    assert len(body["inputs"][0]["data"]) == 192


async def test_an_mlserver_shaped_answer() -> None:
    """MLServer's NumPy codec sends a 1-D INT64 output as [N, 1], with a content type; the real
    server is tested in test_replay_mlserver.py, this runs without its virtualenv."""
    label = {
        "name": "label",
        "shape": [3, 1],
        "datatype": "INT64",
        "parameters": {"content_type": "np"},
        "data": [0, 0, 1],  # not the arg max: the server's label is taken as sent
    }
    probabilities = {
        "name": "probabilities",
        "shape": [3, 2],
        "datatype": "FP32",
        "parameters": {"content_type": "np"},
        "data": [0.1, 0.9, 0.8, 0.2, 0.3, 0.7],
    }
    answer: dict[str, object] = {"model_name": "digits", "model_version": "1", "id": "x"}
    answer["outputs"] = [label, probabilities]
    client = _client(lambda request: httpx.Response(200, json=answer))
    got = await client.infer("digits", "1", ROWS)
    await client.aclose()
    assert got.labels.tolist() == [0, 0, 1] and got.labels.shape == (3,)
    assert got.model_version == "1" and got.probabilities.shape == (3, 2)


@pytest.mark.parametrize(
    ("response", "error", "text"),
    [
        (httpx.Response(200, text="<html>ok</html>"), BackendResponseError, "is not JSON"),
        (httpx.Response(503, text="<h1>Bad gateway</h1>"), BackendResponseError, "HTTP 503"),
        (httpx.Response(500, json={"error": "boom"}), BackendResponseError, "HTTP 500: boom"),
        (httpx.Response(400, json={"error": "bad shape"}), BackendResponseError, "bad shape"),
        (httpx.Response(200, json={"outputs": "nope"}), BackendResponseError, "no 'outputs'"),
        (
            httpx.Response(200, json={"outputs": [{"name": "label", "shape": [3], "data": [1]}]}),
            BackendResponseError,
            "no 'probabilities' output",
        ),
        (
            httpx.Response(200, json=_answer([[0.5, 0.5]])),
            BackendResponseError,
            "probabilities of shape [1, 2] for 3 rows",
        ),
        (
            httpx.Response(
                200,
                json={"outputs": [{"name": "probabilities", "shape": [3, 2], "data": ["x"] * 6}]},
            ),
            BackendResponseError,
            "does not hold [3, 2] numbers",
        ),
    ],
)
async def test_faults_are_one_clear_error(
    response: httpx.Response, error: type[Exception], text: str
) -> None:
    client = _client(lambda request: response)
    with pytest.raises(error) as caught:
        await client.infer("digits", "2", ROWS)
    await client.aclose()
    assert text in str(caught.value)
    assert "http://v2.test" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_a_hang_is_a_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = _client(handler)
    with pytest.raises(BackendUnavailable, match="timed out"):
        await client.infer("digits", "2", ROWS)
    await client.aclose()


@pytest.mark.parametrize(
    "url", ["ftp://host:1", "http://", "http://host:1/v2/models", "host:8000", "http://h?x=1"]
)
def test_endpoint_urls_are_checked(url: str) -> None:
    with pytest.raises(ConfigError):
        check_endpoint(url)


def test_a_base_url_is_accepted() -> None:
    assert check_endpoint(" http://127.0.0.1:8080/ ") == "http://127.0.0.1:8080"
