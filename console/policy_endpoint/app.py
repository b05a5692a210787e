"""Starlette routes of the policy endpoint; the contract is in the package docstring."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from console.adapters.policy_decisions import Decision, PolicyDecider
from console.config import Settings
from console.policy_endpoint.clients import client_of, pseudonym_secret
from console.policy_endpoint.metrics import EndpointMetrics, Outcome

log = logging.getLogger(__name__)

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
NO_CLIENT = (
    "no valid client id: send {header} (1-128 letters, digits and . _ : @ -, starting with a "
    "letter or digit) or {key_header}: Bearer <key>"
)


class DecisionService:
    """The decisions, the identity settings and the metrics one app serves with."""

    def __init__(self, settings: Settings) -> None:
        cfg = settings.policy_endpoint
        self.client_header = cfg.client_header
        self.api_key_header = cfg.api_key_header
        self.secret = pseudonym_secret(settings)
        self.metrics = EndpointMetrics()
        self.decider = PolicyDecider(
            settings.redis,
            settings.redis.key_prefix,
            cache_s=cfg.cache_s,
            failure_mode=cfg.redis_failure_mode,
            default_qpm=cfg.default_qpm,
            timeout_s=min(settings.redis.timeout_s, 0.25),
            on_store_state=self.metrics.store_state,
        )
        self.no_client = NO_CLIENT.format(header=cfg.client_header, key_header=cfg.api_key_header)

    async def answer(self, request: Request, *, nginx: bool) -> Response:
        started = time.perf_counter()
        try:
            client = client_of(
                request.headers, self.client_header, self.api_key_header, self.secret
            )
            if client is None:
                self._count("error")
                return JSONResponse({"error": self.no_client}, status_code=401)
            decision = await self.decider.decide(client)
            if decision.shadow_refused:
                self.metrics.shadow_refusal(client)
            return self._response(client, decision, nginx)
        finally:
            self.metrics.latency.observe(time.perf_counter() - started)

    def _response(self, client: str, decision: Decision, nginx: bool) -> Response:
        headers = {"X-AML-Client": client}  # checked against CLIENT_ID: safe in a header
        if decision.verdict == "allow":
            self._count("allow")
            if decision.hardening is not None:
                # What the upstream reduces its answer to (docs/gateways/README.md).
                headers["X-AML-Output"] = decision.hardening.header
            return Response(status_code=200, headers=headers)
        if decision.verdict == "blocked":
            self._count("block")
            block_id = decision.block.id if decision.block is not None else "unknown"
            headers["X-AML-Block-Id"] = block_id
            return _denial(403, {"error": "blocked", "block_id": block_id}, headers, nginx)
        if decision.verdict == "throttled":
            self._count("budget")
            retry = str(decision.retry_after_s)
            body = {"error": "over budget", "retry_after_s": decision.retry_after_s}
            return _denial(429, body, headers, nginx, retry)
        self._count("error")
        body = {"error": "policy store unavailable (fail-closed)"}
        return _denial(503, body, headers, nginx, "1")

    def _count(self, outcome: Outcome) -> None:
        self.metrics.decisions.labels(outcome).inc()


def _denial(
    status: int,
    body: dict[str, object],
    headers: dict[str, str],
    nginx: bool,
    retry_after: str | None = None,
) -> Response:
    if not nginx:
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        return JSONResponse(body, status_code=status, headers=headers)
    headers["X-AML-Status"] = str(status)
    if retry_after is not None:
        headers["X-AML-Retry-After"] = retry_after
    return JSONResponse(body, status_code=403, headers=headers)


def create_app(settings: Settings) -> Starlette:
    """The app; ConfigError (e.g. an unreadable pseudonym secret) before anything serves."""
    service = DecisionService(settings)

    async def decision(request: Request) -> Response:
        return await service.answer(request, nginx=False)

    async def nginx_decision(request: Request) -> Response:
        return await service.answer(request, nginx=True)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "policy_store_up": service.metrics.up})

    async def metrics(_: Request) -> Response:
        body = generate_latest(service.metrics.registry)
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        feed = asyncio.create_task(service.decider.follow_changes())
        try:
            yield
        finally:
            service.decider.closing = True
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed
            await service.decider.aclose()

    app = Starlette(
        routes=[
            Route("/v1/decision/nginx", nginx_decision, methods=METHODS),
            Route("/v1/decision/nginx/{rest:path}", nginx_decision, methods=METHODS),
            Route("/v1/decision", decision, methods=METHODS),
            Route("/v1/decision/{rest:path}", decision, methods=METHODS),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    return app
