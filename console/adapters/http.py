"""Shared HTTP plumbing: one place that turns httpx failures into ``AdapterError``s.

Their messages quote the request's URL without its credentials (``http://user:token@host``
is shown as ``http://***@host``), and so is any URL inside a backend's or httpx's own text.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from console.errors import BackendResponseError, BackendUnavailable
from console.urls import redact_url, redact_urls_in

MAX_RESPONSE_BYTES = 8 * 1024 * 1024


def make_client(base_url: str, timeout_s: float, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        **kwargs,
    )


async def request_json(
    client: httpx.AsyncClient,
    backend: str,
    method: str,
    url: str,
    *,
    json_body: Any = None,
    params: dict[str, Any] | None = None,
    content: bytes | None = None,
    allow_404: bool = False,
) -> Any:
    """Send a request (a JSON body, or raw ``content``) and return its decoded JSON body (None
    for an empty body).

    Raises BackendUnavailable (retryable) on connect errors and timeouts, and
    BackendResponseError on error statuses or a body that is not JSON.
    """
    where = f"{backend} {method} {redact_url(str(client.base_url.join(url)))}"
    try:
        response = await client.request(method, url, json=json_body, params=params, content=content)
    except httpx.TimeoutException:
        raise BackendUnavailable(f"{where}: timed out", backend) from None
    except httpx.TransportError as exc:
        raise BackendUnavailable(f"{where}: cannot connect ({_reason(exc)})", backend) from None
    if allow_404 and response.status_code == 404:
        return None
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise BackendResponseError(
            f"{where}: response of {len(response.content)} bytes is over the limit",
            backend,
            response.status_code,
        )
    if response.status_code >= 400:
        raise BackendResponseError(
            f"{where}: HTTP {response.status_code}: {_error_text(response)}",
            backend,
            response.status_code,
        )
    if not response.content.strip():
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        snippet = response.text[:80].replace("\n", " ")
        raise BackendResponseError(
            f"{where}: answered HTTP {response.status_code} with a body that is not JSON: "
            f"{redact_urls_in(snippet)!r}",
            backend,
            response.status_code,
        ) from None


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return redact_urls_in(text.splitlines()[0][:200])


def _error_text(response: httpx.Response) -> str:
    """The error a backend answered, cut short, any URL in it redacted."""
    return redact_urls_in(_raw_error_text(response))


def _raw_error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200].replace("\n", " ") or response.reason_phrase
    if isinstance(body, dict):
        code = f"{body['error_code']}: " if "error_code" in body else ""
        for key in ("message", "error"):
            if key in body:
                return f"{code}{str(body[key])[:200]}"
        if code:
            return code.rstrip(": ")
    return str(body)[:200]
