"""The gateway's request pipeline and background tasks, independent of the web framework."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from console import model_signing
from console.adapters.policy_decisions import ALLOW, PolicyDecider
from console.config import Settings
from console.detectors.extraction import ExtractionMonitor
from console.lab.gateway.callers import Caller, pseudonym_secret
from console.lab.gateway.client_slots import OTHER
from console.lab.gateway.models import LoadedModel, ModelStore
from console.lab.gateway.otlp_export import OtlpHttpExporter
from console.lab.gateway.protocol import RequestError, infer_response, parse_infer
from console.lab.gateway.samples import Sample, SampleStore
from console.lab.gateway.sinks import JsonlSink
from console.lab.gateway.telemetry import (
    AttributeValue,
    GatewayMetrics,
    PolicySnapshot,
    Span,
    SpanWriter,
    new_span_id,
)

log = logging.getLogger(__name__)

FLAG_REASON = "feature_squeezing"
POLICY_GAUGE_REFRESH_S = 5.0


@dataclass
class Reply:
    """What the web layer sends back."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _local_path(location: str) -> Path | None:
    return None if "://" in location else Path(location)


class Gateway:
    """Everything a request touches: model store, policy, detectors, telemetry, samples."""

    def __init__(self, settings: Settings, *, seed: int = 0) -> None:
        self.settings = settings
        cfg = settings.gateway
        self.pseudonym_secret = pseudonym_secret(settings)
        self.metrics = GatewayMetrics(
            settings.models.served,
            client_capacity=cfg.client_labels,
            client_idle_s=cfg.client_label_idle_s,
        )
        self.models = ModelStore(
            list(settings.models.served),
            settings.mlflow.url,
            settings.mlflow.timeout_s,
            on_failure=lambda name, reason: self.metrics.load_failures.labels(name, reason).inc(),
            on_loaded=self._model_loaded,
            squeezers=settings.detectors.squeezers,
            signing=model_signing.signing_policy(settings),
        )
        self.policy = PolicyDecider(
            settings.redis,
            settings.redis.key_prefix,
            cache_s=cfg.policy_cache_s,
            failure_mode=cfg.redis_failure_mode,
            default_qpm=cfg.default_qpm,
            timeout_s=min(settings.redis.timeout_s, 0.25),
            on_store_state=lambda up: self.metrics.policy_up.set(1 if up else 0),
        )
        self.extraction = {name: ExtractionMonitor() for name in settings.models.served}
        traces_dir = _local_path(settings.traces.path)
        self._span_sink = JsonlSink(
            "traces", on_drop=self.metrics.dropped.labels("traces").inc, root=traces_dir
        )
        self.otlp: OtlpHttpExporter | None = None
        if settings.traces.otlp_endpoint:
            dropped = self.metrics.dropped.labels("otlp").inc
            self.otlp = OtlpHttpExporter(settings.traces.otlp_endpoint, on_drop=dropped)
        self.spans = (
            SpanWriter(traces_dir, self._span_sink, exporter=self.otlp)
            if traces_dir or self.otlp
            else None
        )
        samples_dir = _local_path(settings.samples.path)
        self.samples: SampleStore | None = None
        self._sample_sink = JsonlSink(
            "samples",
            on_drop=self.metrics.dropped.labels("samples").inc,
            housekeeping=self._expire_samples,
            root=samples_dir,
        )
        if samples_dir is not None:
            self.samples = SampleStore(
                samples_dir,
                self._sample_sink,
                fraction=cfg.sample_fraction,
                hash_only=cfg.hash_only,
                retention_days=cfg.retention_days,
                seed=seed,
            )
        for where, path in (("traces", traces_dir), ("samples", samples_dir)):
            if path is None:
                log.warning("%s location is a URL: the gateway writes only local files; off", where)
        self._tasks: list[asyncio.Task[None]] = []

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._span_sink.start()
        if self.otlp is not None:
            self.otlp.start()
        self._sample_sink.start()  # its first housekeeping run applies the retention
        poll_s = self.settings.gateway.alias_poll_s
        self._tasks = [
            asyncio.create_task(_supervised("model poll", lambda: self.models.poll(poll_s))),
            asyncio.create_task(_supervised("policy changes", self.policy.follow_changes)),
            asyncio.create_task(_supervised("policy gauges", self._refresh_policy_gauges)),
        ]

    async def stop(self) -> None:
        self.policy.closing = True
        for task in self._tasks:
            task.cancel()
        # redis-py can swallow a cancellation inside get_message: bound the wait, never hang.
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=3.0)
            for task in pending:
                log.warning("background task %s did not stop in time", task.get_name())
        await self.models.aclose()
        await self.policy.aclose()
        await asyncio.to_thread(self._span_sink.close)
        if self.otlp is not None:
            await asyncio.to_thread(self.otlp.close)
        await asyncio.to_thread(self._sample_sink.close)

    def _expire_samples(self) -> None:
        if self.samples is not None:
            self.samples.expire()

    def _model_loaded(self, loaded: LoadedModel, previous: LoadedModel | None) -> None:
        if previous is not None:
            self.metrics.model_info.remove(previous.name, previous.version)
        self.metrics.model_info.labels(loaded.name, loaded.version).set(1)

    async def _refresh_policy_gauges(self) -> None:
        while True:
            got = await self.policy.snapshot()
            if got is not None:
                self.metrics.policy.snapshot = PolicySnapshot(*got)
            await asyncio.sleep(POLICY_GAUGE_REFRESH_S)

    # Views ------------------------------------------------------------------------------------

    def readiness(self) -> Reply:
        problems = {
            name: self._why_not_ready(name)
            for name, slot in self.models.slots.items()
            if slot.current is None
        }
        if problems:
            return Reply(503, {"ready": False, "models": problems})
        return Reply(200, {"ready": True})

    def _why_not_ready(self, name: str) -> str:
        slot = self.models.slots[name]
        if slot.failure is not None:
            return f"version {slot.failure.version} refused: {slot.failure.message}"
        return slot.registry_error or "loading"

    def model_status(self, name: str) -> dict[str, Any]:
        slot = self.models.slots[name]
        current = slot.current
        return {
            "ready": current is not None,
            "alias": "champion",
            "champion": slot.champion,
            "serving": None
            if current is None
            else {
                "version": current.version,
                "sha256": current.sha256,
                "loaded_at": current.loaded_at.isoformat(),
            },
            "last_refusal": slot.failure.as_dict() if slot.failure else None,
            "registry_error": slot.registry_error,
        }

    # Inference -------------------------------------------------------------------------------

    async def infer(
        self,
        name: str,
        caller: Caller,
        read_body: Callable[[], Awaitable[bytes]],
        version: str | None = None,
    ) -> Reply:
        started, start_ns = time.perf_counter(), time.time_ns()
        span = Span(
            caller.trace_id,
            new_span_id(),
            "POST /v2/models/{name}/infer",
            start_ns,
            caller.parent_span_id,
        )
        attrs: dict[str, AttributeValue] = {"aml.model": name, "aml.client": caller.client or ""}
        served = name in self.models.slots
        loaded = self.models.get(name) if served else None
        model_version = loaded.version if loaded else "none"
        outcome = "error"
        client_label = "unknown"
        try:
            if not served:
                raise RequestError(
                    404,
                    "unknown_model",
                    f"model {name!r} is not served here (served: {', '.join(self.models.slots)})",
                )
            if caller.client is None:
                raise RequestError(
                    400,
                    "missing_client",
                    "missing client identity: send an X-Client-Id header "
                    "(or Authorization: Bearer <api key>)",
                )
            client_label = self.metrics.client_label(caller.client)
            reply = await self._guarded(
                name, caller, client_label, loaded, version, read_body, span, attrs
            )
            outcome = str(attrs["aml.outcome"])
        except RequestError as exc:
            self.metrics.bad_requests.labels(exc.reason).inc()
            reply = Reply(exc.status, {"error": exc.message})
        except Exception:  # the gateway answers 500 and stays up; the traceback goes to the log
            log.exception("infer %s failed (trace %s)", name, span.trace_id)
            span.error = True
            reply = Reply(500, {"error": "internal error; see the gateway log"})
        elapsed = time.perf_counter() - started
        if served and caller.client is not None:
            self.metrics.slots.observe(
                caller.client,
                outcome=outcome,
                rows=int(attrs.get("aml.rows", 0)),
                flagged_rows=int(attrs.get("aml.flagged_rows", 0)),
                model=name,
                extraction=float(attrs["aml.extraction_score"])
                if "aml.extraction_score" in attrs
                else None,
            )
        if served:
            self.metrics.requests.labels(name, model_version, client_label, outcome).inc()
            self.metrics.duration.labels(name, model_version).observe(elapsed)
        attrs.update(
            {
                "aml.model_version": model_version,
                "aml.outcome": outcome,
                "http.response.status_code": reply.status,
            }
        )
        span.end_ns = span.start_ns + int(elapsed * 1e9)
        if self.spans is not None:
            self.spans.emit(span, attrs)
        reply.headers["X-Trace-Id"] = span.trace_id
        return reply

    async def _guarded(
        self,
        name: str,
        caller: Caller,
        client_label: str,
        loaded: LoadedModel | None,
        version: str | None,
        read_body: Callable[[], Awaitable[bytes]],
        span: Span,
        attrs: dict[str, AttributeValue],
    ) -> Reply:
        attrs["aml.outcome"] = "error"
        client = caller.client or ""
        if self.settings.gateway.policy_decided_upstream:
            # A replica behind the lab's NGINX: the policy endpoint decided (and counted the
            # budget) already; deciding again would count every request twice.
            decision = ALLOW
        else:
            decision = await self.policy.decide(client)
        if decision.shadow_refused:
            self.metrics.shadow_refusals.labels(client_label).inc()
        if decision.verdict == "blocked":
            attrs["aml.outcome"] = "blocked"
            return Reply(403, {"error": decision.message})
        if decision.verdict == "throttled":
            attrs["aml.outcome"] = "throttled"
            return Reply(
                429, {"error": decision.message}, {"Retry-After": str(decision.retry_after_s)}
            )
        if decision.verdict == "unavailable":
            self.metrics.policy_fail_closed.inc()
            return Reply(503, {"error": decision.message}, {"Retry-After": "1"})
        if decision.fail_open:
            self.metrics.policy_fail_open.inc()
        if loaded is None:
            return Reply(
                503,
                {"error": f"model {name!r} is not loaded: {self._why_not_ready(name)}"},
                {"Retry-After": "5"},
            )
        if version is not None and version != loaded.version:
            raise RequestError(
                404,
                "unknown_version",
                f"model {name!r} version {version!r} is not served (serving {loaded.version})",
            )
        request = parse_infer(await read_body())
        x = request.x
        rows = x.shape[0]
        # One graph call: the model on the input and its squeezed copies, and the scores.
        labels, probabilities, scores = loaded.run(x)
        extraction = self.extraction[name].observe(client, x)
        flagged_rows = int((scores >= self.settings.detectors.flag_threshold).sum())
        sample_ids = self._observe(
            loaded,
            client,
            client_label,
            x,
            labels,
            probabilities,
            scores,
            extraction,
            span.trace_id,
        )
        attrs.update(
            {
                "aml.outcome": "ok",
                "aml.detector_score": round(float(scores.max()), 6),
                "aml.extraction_score": round(extraction, 6),
                "aml.input_sha256": hashlib.sha256(x.tobytes()).hexdigest(),
                "aml.rows": rows,
                "aml.flagged": flagged_rows > 0,
                "aml.flagged_rows": flagged_rows,
            }
        )
        if sample_ids:
            attrs["aml.sample_id"] = ",".join(sample_ids)
        request_id = request.id or new_span_id() + new_span_id()
        output = decision.hardening.header if decision.hardening else caller.upstream_output
        body = infer_response(
            name, loaded.version, request_id, labels, probabilities, request.outputs, output
        )
        return Reply(200, body, {"X-AML-Output": output} if decision.hardening else {})

    def _observe(
        self,
        loaded: LoadedModel,
        client: str,
        client_label: str,
        x: np.ndarray[Any, Any],
        labels: np.ndarray[Any, Any],
        probabilities: np.ndarray[Any, Any],
        scores: np.ndarray[Any, Any],
        extraction: float,
        trace_id: str,
    ) -> list[str]:
        """Metrics per row; samples of flagged (and a fraction of other) rows; their ids."""
        m, name, version = self.metrics, loaded.name, loaded.version
        confidence = probabilities.max(axis=1)
        threshold = self.settings.detectors.flag_threshold
        detector, conf_hist = m.detector.labels(name, version), m.confidence.labels(name, version)
        if client_label != OTHER:
            m.extraction.labels(name, client_label).set(extraction)
        sample_ids: list[str] = []
        now = datetime.now(UTC).isoformat()
        for i in range(x.shape[0]):
            score, flagged = float(scores[i]), bool(scores[i] >= threshold)
            detector.observe(score)
            conf_hist.observe(float(confidence[i]))
            if flagged:
                m.flagged.labels(name, version, client_label, FLAG_REASON).inc()
            if self.samples is None or not self.samples.wanted(flagged):
                continue
            sample_id = self.samples.new_id()
            sample_ids.append(sample_id)
            self.samples.write(
                Sample(
                    sample_id=sample_id,
                    time=now,
                    client=client,
                    model=name,
                    version=version,
                    detector_score=round(score, 6),
                    extraction_score=round(extraction, 6),
                    prediction=int(labels[i]),
                    confidence=round(float(confidence[i]), 6),
                    flagged=flagged,
                    trace_id=trace_id,
                    input_sha256=hashlib.sha256(x[i].tobytes()).hexdigest(),
                    input=x[i].astype(float).tolist(),
                )
            )
        return sample_ids


async def _supervised(what: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a background loop forever: a bug in it is logged and the loop restarted, never
    allowed to take the gateway down or to stop silently."""
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %r failed; restarting in 1 s", what)
        await asyncio.sleep(1.0)
