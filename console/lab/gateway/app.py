"""Starlette routes of the gateway (Open Inference / V2 protocol, ``/metrics``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from console import __version__
from console.config import Settings
from console.lab.gateway.callers import client_from_headers, new_caller
from console.lab.gateway.protocol import MAX_BODY_BYTES, RequestError, model_metadata
from console.lab.gateway.service import Gateway, Reply
from console.lab.gateway.telemetry import parse_traceparent

log = logging.getLogger(__name__)


def _json(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise RequestError(413, "too_large", f"request body of {length} bytes is over {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "too_large", f"request body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class BodyReader:
    """Reads request bodies within a deadline, at most ``max_pending`` at once: a client that
    sends its headers and then trickles its body (or never sends it) is cut off after
    ``timeout_s`` and cannot hold more than its share of the gateway while it waits."""

    def __init__(self, timeout_s: float, max_pending: int) -> None:
        self.timeout_s = timeout_s
        self.max_pending = max_pending
        self.pending = 0

    async def read(self, request: Request) -> bytes:
        if self.pending >= self.max_pending:
            raise RequestError(
                503, "too_many_pending", "too many request bodies in flight; retry shortly"
            )
        self.pending += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                return await _read_body(request)
        except TimeoutError:
            raise RequestError(
                408, "body_timeout", f"request body not received within {self.timeout_s:g} s"
            ) from None
        finally:
            self.pending -= 1


def create_app(settings: Settings, gateway: Gateway | None = None) -> Starlette:
    """The ASGI app. Its lifespan starts and stops the gateway's background tasks."""
    gw = gateway or Gateway(settings)
    bodies = BodyReader(settings.gateway.body_timeout_s, settings.gateway.max_pending_bodies)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.start()
        log.info("gateway serving %s", ", ".join(gw.models.slots))
        try:
            yield
        finally:
            await gw.stop()

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return _json(gw.readiness())

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "aml-gateway", "version": __version__, "extensions": []})

    async def metadata(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in gw.models.slots:
            return _error(404, f"model {name!r} is not served here")
        current = gw.models.get(name)
        body = model_metadata(name, current.version if current else None)
        body["aml"] = gw.model_status(name)
        return JSONResponse(body)

    async def model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in gw.models.slots:
            return _error(404, f"model {name!r} is not served here")
        ok = gw.models.get(name) is not None
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    async def infer(request: Request) -> Response:
        try:
            client = client_from_headers(
                request.headers.get("x-client-id"),
                request.headers.get("authorization"),
                gw.pseudonym_secret,
            )
        except RequestError as exc:
            gw.metrics.bad_requests.labels(exc.reason).inc()
            return _error(exc.status, exc.message)
        # Behind the lab's NGINX the policy endpoint decided; NGINX overwrites the client's own
        # copy of this header, so it is the endpoint's.
        upstream = gw.settings.gateway.policy_decided_upstream
        output = request.headers.get("x-aml-output", "") if upstream else ""
        caller = new_caller(client, parse_traceparent(request.headers.get("traceparent")), output)
        reply = await gw.infer(
            request.path_params["name"],
            caller,
            lambda: bodies.read(request),
            request.path_params.get("version"),
        )
        return _json(reply)

    async def clients(request: Request) -> Response:
        """The gateway's own per-client state for the clients counted as ``other``, riskiest
        first: who hides in the bucket, whatever the label slots say."""
        raw = request.query_params.get("limit", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            return _error(400, "limit must be an integer between 1 and 1000")
        slots = gw.metrics.slots
        return JSONResponse(
            {
                "label_slots": {"capacity": slots.capacity, "used": slots.used},
                "tracked": slots.tracked,
                "unlabelled": [asdict(c) for c in slots.unlabelled(int(raw))],
            }
        )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, exc.detail)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error; see the gateway log")

    routes = [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{name}", metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/aml/clients", clients, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.gateway = gw
    return app
