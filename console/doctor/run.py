"""Check every endpoint of the settings at once, each within its own deadline, so one slow
backend delays nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from console.adapters.backends import Backends
from console.config import Settings
from console.doctor.local import check_acl, check_audit, check_redis, check_store
from console.doctor.metrics import check_prometheus
from console.doctor.model import Endpoint, EndpointReport, Findings, describe
from console.doctor.registry import check_alertmanager, check_registry
from console.doctor.signing import check_signing, endpoint_url
from console.errors import ConsoleError

DEADLINE_S = 15.0
"""Per endpoint, for all its calls (each is also bounded by its section's ``timeout_s``)."""

Probe = Callable[[Findings], Awaitable[EndpointReport]]


async def run_doctor(settings: Settings, deadline_s: float = DEADLINE_S) -> list[EndpointReport]:
    """One report per endpoint, in a fixed order: prometheus, alertmanager, mlflow, redis,
    audit, traces, samples, acl, signing (the artifact signing policy and the champions'
    robustness records)."""
    # No retries: doctor reports what one call sees, and a dead engine must not be asked thrice.
    backends = Backends(settings, prometheus_retries=0)
    probes: list[tuple[Endpoint, Probe]] = [
        (
            Endpoint("prometheus", "prometheus", settings.prometheus.url),
            lambda f: check_prometheus(backends, f),
        ),
        (
            Endpoint("alertmanager", "alertmanager", settings.alertmanager.url),
            lambda f: check_alertmanager(backends, f),
        ),
        (Endpoint("mlflow", "mlflow", settings.mlflow.url), lambda f: check_registry(backends, f)),
        (Endpoint("redis", "redis", settings.redis.url), lambda f: check_redis(backends, f)),
        (Endpoint("audit", "audit", str(settings.audit_path)), lambda f: check_audit(settings, f)),
        (
            Endpoint("traces", "traces", settings.traces.path),
            lambda f: check_store(settings.traces.path, "traces", f),
        ),
        (
            Endpoint("samples", "samples", settings.samples.path),
            lambda f: check_store(settings.samples.path, "samples", f),
        ),
        (
            Endpoint("acl", "acl", str(settings.acl.path or "-")),
            lambda f: check_acl(settings, f),
        ),
        (
            Endpoint("signing", "models", endpoint_url(settings)),
            lambda f: check_signing(backends, f),
        ),
    ]
    try:
        _build_clients(backends)
        return list(
            await asyncio.gather(*(_bounded(end, probe, deadline_s) for end, probe in probes))
        )
    finally:
        await backends.aclose()


def _build_clients(backends: Backends) -> None:
    """Build the clients (their imports, TLS contexts, secret files) before any probe starts
    its clock: building one blocks the loop, and would count in the others' latencies."""
    for name in ("prometheus", "alertmanager", "registry", "redis"):
        # On a ConsoleError the probe builds it again and reports why it cannot.
        with contextlib.suppress(ConsoleError):
            getattr(backends, name)


async def _bounded(endpoint: Endpoint, probe: Probe, deadline_s: float) -> EndpointReport:
    findings = Findings(endpoint)
    try:
        return await asyncio.wait_for(probe(findings), deadline_s)
    except TimeoutError:
        findings.error = f"unreachable: no answer within {deadline_s:g} s"
        findings.failed("answers in time", findings.error, endpoint.start_hint())
    except Exception as exc:  # noqa: BLE001 - a diagnosis reports every failure, never a traceback
        findings.error = describe(exc)
        findings.failed("checked", findings.error, f"check [{endpoint.section}]")
    return findings.report()
