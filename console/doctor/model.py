"""What ``doctor`` finds: one report per endpoint, one check per thing the console needs from
it, and the words for why a call failed and what to do about it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from console.errors import BackendResponseError, BackendUnavailable
from console.urls import redact_url, redact_urls_in

FailureKind = Literal["unreachable", "unauthenticated", "garbage", "failed"]
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""
    hint: str = ""
    """What to do, for a failed check (empty when it passed)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "hint": self.hint}


@dataclass(frozen=True)
class EndpointReport:
    name: str
    url: str
    """Without credentials."""
    ok: bool
    """Every check passed."""
    error: str | None
    """Why the endpoint could not be checked further (unreachable, refused, garbage)."""
    latency_ms: float | None
    """Of the first call: what one round trip costs."""
    version: str | None
    checks: tuple[Check, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "ok": self.ok,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "version": self.version,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class Endpoint:
    """What a check needs to word its hints: the endpoint's name, config section and URL."""

    name: str
    section: str
    url: str

    @property
    def shown_url(self) -> str:
        return redact_url(self.url)

    @property
    def on_loopback(self) -> bool:
        try:
            return (urlsplit(self.url).hostname or "") in LOOPBACK
        except ValueError:
            return False

    def start_hint(self) -> str:
        lab = " (in the lab: run aml-console lab up)" if self.on_loopback else ""
        return f"start {self.name} or fix [{self.section}].url{lab}"

    def credentials_hint(self) -> str:
        if self.section == "redis":
            return "check the username and password in [redis].url (redis://user:pass@host)"
        extra = (
            ", or MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"
            if self.section == "mlflow"
            else ""
        )
        return f"check [{self.section}].basic_auth or [{self.section}].authorization{extra}"


def failure_kind(exc: BaseException) -> FailureKind:
    """How a backend call failed. A 401/403 is detected by its status, so a subclass of
    BackendResponseError for refused credentials is one too."""
    if isinstance(exc, BackendUnavailable):
        return "unreachable"
    if isinstance(exc, BackendResponseError):
        if exc.status in (401, 403):
            return "unauthenticated"
        if exc.status is None or exc.status < 400 or exc.status == 404:
            return "garbage"
    return "failed"


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return redact_urls_in(" ".join(text.split()))[:400]


@dataclass
class Findings:
    """A report being put together, check by check."""

    endpoint: Endpoint
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    latency_ms: float | None = None
    version: str | None = None
    _started: float = field(default_factory=time.perf_counter, repr=False)

    def passed(self, name: str, detail: str = "") -> None:
        self.checks.append(Check(name, True, detail))

    def failed(self, name: str, detail: str, hint: str) -> None:
        self.checks.append(Check(name, False, detail, hint))

    def start_clock(self) -> None:
        self._started = time.perf_counter()

    def answered(self, credentials: str) -> None:
        """The first call came back: the endpoint is reachable and took the credentials."""
        self.latency_ms = round((time.perf_counter() - self._started) * 1000, 1)
        self.passed("reachable", f"answered in {self.latency_ms:g} ms")
        self.passed("authenticated", credentials)

    def first_call_failed(self, exc: BaseException, api: str) -> None:
        """The first call failed: say whether the endpoint is down, refused the credentials or
        is not the API it should be (``api``: "the PromQL API")."""
        kind = failure_kind(exc)
        detail = describe(exc)
        end = self.endpoint
        if kind == "unreachable":
            self.error = f"unreachable: {detail}"
            self.failed("reachable", detail, end.start_hint())
            return
        self.latency_ms = round((time.perf_counter() - self._started) * 1000, 1)
        self.passed("reachable", f"answered in {self.latency_ms:g} ms")
        if kind == "unauthenticated":
            self.error = f"not authenticated: {detail}"
            self.failed("authenticated", detail, end.credentials_hint())
        elif kind == "garbage":
            self.error = f"answered garbage: {detail}"
            self.failed(
                "api",
                detail,
                f"is [{end.section}].url the base URL of {api} (not a UI, a login page or "
                "another service)?",
            )
        else:
            self.error = detail
            self.failed("api", detail, f"see the log of {end.name} at {end.shown_url}")

    def call_failed(self, name: str, exc: BaseException, hint: str) -> None:
        """A later call failed: that check fails; credentials refused (401) get the
        credentials hint, a permission refused (403) keeps ``hint``, which says what it is for."""
        if isinstance(exc, BackendResponseError) and exc.status == 401:
            hint = f"{self.endpoint.credentials_hint()} (refused for this call)"
        elif isinstance(exc, BackendResponseError) and exc.status == 403:
            hint = f"the credentials lack the permission: {hint}"
        self.failed(name, describe(exc), hint)

    def report(self) -> EndpointReport:
        return EndpointReport(
            name=self.endpoint.name,
            url=self.endpoint.shown_url,
            ok=self.error is None and all(c.ok for c in self.checks),
            error=self.error,
            latency_ms=self.latency_ms,
            version=self.version,
            checks=tuple(self.checks),
        )
