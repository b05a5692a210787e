"""A templated HTTP request, for gateways the console has no adapter for. Never a shell.

Only hosts in ``http_action.allowed_hosts`` are called, through no proxy but
``http_action.proxy`` (whose host must be allowed too): never one named by the environment.
A host of ``http_action.auth`` gets its credentials and TLS (``Backends.http``); a 401 or 403
is a BackendAuthError.
URLs are shown and written with their credentials cut out (``console.urls``).
"""

from __future__ import annotations

import ssl
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import httpx
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from console.adapters.http import refused, transport_failure
from console.errors import BackendResponseError, ParameterError
from console.runbooks.actions.base import Action, ActionArgs, ActionContext, StepPlan
from console.urls import redact_url

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
IDEMPOTENT_METHODS = {"GET", "PUT", "DELETE"}


def host_problem(url: str, allowed: list[str], what: str = "http.request to") -> str | None:
    """Why ``url`` may not be called, or None: its host is not in ``allowed``."""
    host = urlsplit(url).hostname or ""
    if host in allowed:
        return None
    return f"{what} {host!r} is not allowed (http_action.allowed_hosts: {', '.join(allowed)})"


class RequestSpec(ActionArgs):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    method: Method = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    expect_status: list[int] = Field(default_factory=lambda: [200, 201, 202, 204])

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str, info: ValidationInfo) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{redact_url(value)[:80]!r} is not an http(s) URL")
        # Given when a file is validated or a step planned with the settings at hand.
        allowed = (info.context or {}).get("allowed_hosts")
        if allowed is not None:
            problem = host_problem(value, list(allowed))
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            if any(c in str(item) for c in "\r\n") or any(c in name for c in "\r\n:"):
                raise ValueError(f"header {name[:40]!r} has a line break or colon")
        return value


class HttpArgs(RequestSpec):
    undo: RequestSpec | None = None
    """The request that reverses this one (the step's compensation)."""


def _describe(spec: RequestSpec) -> str:
    body = "" if spec.json_body is None else f" json={spec.json_body}"
    return f"{spec.method} {redact_url(spec.url)}{body}"


REGISTRY_PATHS = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow", "/api/2.0/preview/mlflow")
LOOPBACK = {"localhost", "::1", "0.0.0.0", "ip6-localhost"}


def _endpoint(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if host in LOOPBACK or host.startswith("127."):
        host = "loopback"
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return host, port


def registry_problem(url: str, registry_url: str) -> str | None:
    """Why ``url`` may not be called: it is the model registry (its origin, or its API's path
    on any host). Moving aliases goes through promote-model and rollback-model, where the
    robustness gate is; a templated request would go around it."""
    path = unquote(urlsplit(url).path).lower().replace("//", "/")
    if _endpoint(url) == _endpoint(registry_url) or any(p in path for p in REGISTRY_PATHS):
        return (
            "http.request does not call the model registry: use promote-model or "
            "rollback-model (the robustness gate)"
        )
    return None


def _check_hosts(spec: RequestSpec, ctx: ActionContext) -> None:
    """The request's host, and the configured proxy's, must be allowed; never the registry."""
    allowed = list(ctx.settings.http_action.allowed_hosts)
    problem = registry_problem(spec.url, ctx.settings.mlflow.url) or host_problem(spec.url, allowed)
    proxy = ctx.settings.http_action.proxy
    if problem is None and proxy:
        shown = f"http_action.proxy {redact_url(proxy)!r}"
        if urlsplit(proxy).scheme not in ("http", "https"):
            problem = f"{shown} is not an http(s) URL"
        else:
            problem = host_problem(proxy, allowed, f"{shown}: host")
    if problem:
        raise ParameterError(problem)


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: what an error names (a path may carry a token)."""
    return urlsplit(url)._replace(path="", query="", fragment="").geturl()


async def _send(spec: RequestSpec, ctx: ActionContext) -> dict[str, Any]:
    _check_hosts(spec, ctx)
    where = f"{spec.method} {redact_url(spec.url)}"
    try:
        response = await ctx.backends.http.request(
            spec.method, spec.url, headers=spec.headers, json=spec.json_body
        )
    except (httpx.TransportError, ssl.SSLError) as exc:
        raise transport_failure(exc, "http", where, _origin(spec.url)) from None
    if response.status_code in (401, 403) and response.status_code not in spec.expect_status:
        host = urlsplit(spec.url).hostname or ""
        sent = host in ctx.settings.http_action.auth or any(
            name.lower() == "authorization" for name in spec.headers
        )
        raise refused("http", _origin(spec.url), response.status_code, sent)
    if response.status_code not in spec.expect_status:
        raise BackendResponseError(
            f"{where}: HTTP {response.status_code} (expected {spec.expect_status})",
            "http",
            response.status_code,
        )
    return {"status": response.status_code, "body": response.text[:500]}


class HttpRequest(Action[HttpArgs]):
    name = "http.request"
    description = "Send one HTTP request to an allowed host (optional undo request)."
    Args = HttpArgs
    idempotent = False

    def retry_safe(self, args: HttpArgs) -> bool:
        return args.method in IDEMPOTENT_METHODS

    async def plan(self, args: HttpArgs, ctx: ActionContext) -> StepPlan:
        _check_hosts(args, ctx)
        if args.undo is not None:
            _check_hosts(args.undo, ctx)
        requests = [_describe(args)]
        if args.undo is not None:
            requests.append(f"(undo) {_describe(args.undo)}")
        return StepPlan(
            summary=f"send {args.method} {redact_url(args.url)}",
            before=None,
            after={"expect_status": args.expect_status},
            requests=requests,
        )

    async def apply(self, args: HttpArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        return await _send(args, ctx)

    async def compensate(self, args: HttpArgs, ctx: ActionContext, before: Any, after: Any) -> Any:
        if args.undo is None:
            return None
        return await _send(args.undo, ctx)
