"""A small async Open Inference (V2) client for traffic and attacks: loopback only, a timeout
per request, outcomes and latencies recorded per client id, ``Retry-After`` respected unless an
attacker deliberately ignores it (flood)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray

from console.errors import LabError
from console.lab.attacks.common import Clock, Outcomes, Rows, percentiles, require_loopback_target
from console.urls import redact_url

OUTCOME_OF_STATUS = {200: "ok", 403: "blocked", 429: "throttled"}
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class InferResult:
    status: int
    """HTTP status; 0 when no answer came (timeout, connection refused)."""
    outcome: str
    """ok, blocked (403), throttled (429) or other."""
    labels: NDArray[np.int64] | None
    version: str | None
    trace_id: str | None
    latency_s: float
    error: str | None = None


@dataclass
class ClientStats:
    """What one client id sent and got back."""

    requests: int = 0
    queries: int = 0
    """Input rows sent (a request carries one or more)."""
    outcomes: Outcomes = field(default_factory=Outcomes)
    latencies_s: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "queries": self.queries,
            "outcomes": self.outcomes.as_dict(),
            "latency": percentiles(self.latencies_s),
        }


READINESS_CLIENT = "aml-lab-readiness"
"""The client id of the metadata request before a run."""


class V2Client:
    """POST ``/v2/models/{model}/infer`` as any client id, against a loopback gateway only.

    The URL is checked before the HTTP client exists. Redirects are not followed and proxy
    variables are ignored: either could carry lab traffic off the machine.
    """

    def __init__(
        self,
        url: str,
        model: str,
        clock: Clock,
        *,
        timeout_s: float = 5.0,
        respect_retry_after: bool = True,
        max_connections: int = 16,
    ) -> None:
        self.url = require_loopback_target(url)
        self.model = model
        self.clock = clock
        self.respect_retry_after = respect_retry_after
        self.stats: dict[str, ClientStats] = {}
        self._not_before: dict[str, float] = {}
        self._http = httpx.AsyncClient(
            base_url=url,
            timeout=timeout_s,
            trust_env=False,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections),
        )

    async def __aenter__(self) -> V2Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    def total(self) -> ClientStats:
        merged = ClientStats()
        for s in self.stats.values():
            merged.requests += s.requests
            merged.queries += s.queries
            merged.latencies_s += s.latencies_s
            for outcome in ("ok", "blocked", "throttled", "other"):
                setattr(
                    merged.outcomes,
                    outcome,
                    getattr(merged.outcomes, outcome) + getattr(s.outcomes, outcome),
                )
        return merged

    async def check_ready(self) -> str:
        """The served version of the model; LabError if the gateway does not serve it."""
        where = f"gateway at {redact_url(self.url)}"
        try:
            # Named: behind the lab's NGINX (`lab up --replicas`) every request needs a client.
            headers = {"X-Client-Id": READINESS_CLIENT}
            response = await self._http.get(f"/v2/models/{self.model}", headers=headers)
        except httpx.HTTPError as exc:
            raise LabError(
                f"{where} unreachable ({type(exc).__name__}): start it with "
                "`aml-console lab up -s gateway`"
            ) from None
        if response.status_code != 200:
            raise LabError(
                f"{where} does not serve model {self.model!r}: "
                f"HTTP {response.status_code} {response.text[:200]}"
            )
        versions = response.json().get("versions") or []
        if not versions:
            raise LabError(f"{where} has no version of {self.model!r} loaded")
        return str(versions[0])

    async def infer(self, client_id: str, rows: Rows) -> InferResult:
        """Send ``rows`` as ``client_id``, after any ``Retry-After`` this client was given
        (never past the run's deadline)."""
        if self.respect_retry_after:
            wait = self._not_before.get(client_id, 0.0) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, self.clock.remaining()))
        stats = self.stats.setdefault(client_id, ClientStats())
        stats.requests += 1
        stats.queries += int(rows.shape[0])
        body = {
            "inputs": [
                {
                    "name": "input",
                    "shape": [int(rows.shape[0]), int(rows.shape[1])],
                    "datatype": "FP32",
                    "data": rows.astype(np.float64).reshape(-1).tolist(),
                }
            ],
            "outputs": [{"name": "label"}],
        }
        started = time.perf_counter()
        try:
            response = await self._http.post(
                f"/v2/models/{self.model}/infer", json=body, headers={"X-Client-Id": client_id}
            )
        except httpx.HTTPError as exc:
            latency = time.perf_counter() - started
            stats.outcomes.add("other", self.clock.elapsed())
            return InferResult(0, "other", None, None, None, latency, type(exc).__name__)
        latency = time.perf_counter() - started
        outcome = OUTCOME_OF_STATUS.get(response.status_code, "other")
        stats.outcomes.add(outcome, self.clock.elapsed())
        stats.latencies_s.append(latency)
        trace_id = response.headers.get("x-trace-id")
        if response.status_code == 429:
            self._note_retry_after(client_id, response.headers.get("retry-after"))
        if outcome != "ok":
            return InferResult(
                response.status_code, outcome, None, None, trace_id, latency, response.text[:200]
            )
        doc = response.json()
        labels = next((o["data"] for o in doc.get("outputs", []) if o.get("name") == "label"), None)
        return InferResult(
            200,
            "ok",
            None if labels is None else np.asarray(labels, dtype=np.int64),
            str(doc.get("model_version")),
            trace_id,
            latency,
        )

    def _note_retry_after(self, client_id: str, value: str | None) -> None:
        try:
            seconds = min(float(value or "1"), MAX_RETRY_AFTER_S)
        except ValueError:
            seconds = 1.0
        self._not_before[client_id] = time.monotonic() + max(seconds, 0.0)


class Pacer:
    """Releases requests on a schedule (a fixed rate, or Poisson arrivals with a seeded
    generator) with at most ``concurrency`` in flight."""

    def __init__(
        self,
        clock: Clock,
        rate: float,
        concurrency: int = 4,
        rng: np.random.Generator | None = None,
    ) -> None:
        if rate <= 0:
            raise LabError("the rate must be above 0 requests per second")
        if concurrency < 1:
            raise LabError("the concurrency must be at least 1")
        self.clock = clock
        self.rate = rate
        self.rng = rng
        self._next = 0.0
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def tick(self) -> bool:
        """Wait for the next send time; False once it would be past the deadline."""
        gap = self.rng.exponential(1.0 / self.rate) if self.rng is not None else 1.0 / self.rate
        self._next += float(gap)
        delay = self._next - self.clock.elapsed()
        if delay >= self.clock.remaining():
            return False
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            self._next = self.clock.elapsed()  # fell behind: do not burst to catch up
        await self._slots.acquire()
        return True

    def skip(self) -> None:
        """Give back the slot ``tick`` took without sending."""
        self._slots.release()

    def launch(self, job: Any) -> None:
        """Run the awaitable ``job`` in the background; it holds the slot ``tick`` took."""

        async def run() -> None:
            try:
                await job
            finally:
                self._slots.release()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks)
