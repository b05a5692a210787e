"""The Models and Mitigations refreshes on the real stack: the instant panels in one query
answer what each panel's own query answers, and what does not change between refreshes
(the registry's versions, the console's registry changes in the audit log) is read again
only when it may have changed. And the clients the first refresh makes load the system's CAs
only for a request that may negotiate TLS (an ``https://`` URL or a proxy), not for the lab's
plain ``http://`` endpoints."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from lab_stack import LabStack
from support import free_port

import console.adapters.http as http_adapter
import console.views.mitigations as mitigations_view
import console.views.models as models_view
from console.adapters.backends import Backends
from console.audit.log import AuditLog
from console.audit.records import AuditEvent
from console.config import Settings
from console.views import queries as q
from console.views.mitigations import fetch_mitigations
from console.views.models import INSTANT_UNION, fetch_models, per_panel


class CountingRegistry:
    """The real registry client, counting the reads the Models view makes."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.reads = inner, 0

    async def get_model(self, name: str) -> Any:
        self.reads += 1
        return await self.inner.get_model(name)

    async def list_versions(self, name: str) -> Any:
        self.reads += 1
        return await self.inner.list_versions(name)


def own_audit_log(settings: Settings, tmp_path: Path) -> Settings:
    """The stack's settings with an audit log of the test's own."""
    audit = settings.audit.model_copy(
        update={"path": tmp_path / "audit" / "audit.jsonl", "checkpoint_path": None}
    )
    return settings.model_copy(update={"audit": audit})


def alias_move(settings: Settings, model: str) -> AuditEvent:
    return AuditEvent(
        kind="step-outcome",
        result="ok",
        operator="oncall",
        environment=settings.environment,
        run_id="r-test-alias",
        runbook="set-model-alias",
        target=f"model:{model}",
        step="move",
        action="registry.set_alias",
        arguments={"model": model, "alias": "champion", "version": "1"},
        before={"model": model, "alias": "champion", "version": "2"},
        after={"model": model, "alias": "champion", "version": "1"},
    )


async def test_the_instant_panels_union_answers_what_each_panel_query_answers(
    tui_stack: LabStack,
) -> None:
    backends = Backends(tui_stack.settings)
    try:
        prom = backends.prometheus
        deadline = time.monotonic() + 90
        while True:  # until the stack's traffic has a recorded request rate to compare
            at = time.time()
            union = await prom.query(INSTANT_UNION, at)
            columns = per_panel(union, len(q.MODEL_INSTANT))
            if tui_stack.model in columns[0] or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        each = [await prom.query(pq.promql, at) for pq in q.MODEL_INSTANT]
    finally:
        await backends.aclose()
    assert tui_stack.model in columns[0], "no request rate recorded within 90 s"
    assert columns == [{s.metric.get("model", ""): s.value for s in r.samples} for r in each]


async def test_the_registry_is_read_again_only_when_the_audit_log_changes_or_it_ages(
    tui_stack: LabStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = own_audit_log(tui_stack.settings, tmp_path)
    real = Backends(settings)
    registry = CountingRegistry(real.registry)
    backends = Backends(settings, registry=registry)  # type: ignore[arg-type]
    served = len(settings.models.served)
    try:
        first = await fetch_models(backends)
        assert first.registry_error is None and registry.reads == 2 * served
        assert any(first.versions.values())  # the stack's seeded model has versions
        second = await fetch_models(backends)
        assert registry.reads == 2 * served  # kept: nothing says it changed
        assert second.versions == first.versions

        AuditLog.from_settings(settings).append(alias_move(settings, tui_stack.model))
        await fetch_models(backends)
        assert registry.reads == 4 * served  # the console moved an alias: read again

        monkeypatch.setattr(models_view, "REGISTRY_TTL_S", 0.0)
        await fetch_models(backends)
        assert registry.reads == 6 * served  # aged out
    finally:
        await backends.aclose()
        await real.aclose()


async def test_the_registry_changes_are_read_again_only_when_the_audit_log_changes(
    tui_stack: LabStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = own_audit_log(tui_stack.settings, tmp_path)
    reads: list[int] = []
    real_read = mitigations_view._registry_changes

    def counted(backends: Backends) -> list[mitigations_view.RegistryChange]:
        reads.append(1)
        return real_read(backends)

    monkeypatch.setattr(mitigations_view, "_registry_changes", counted)
    backends = Backends(settings)
    try:
        first = await fetch_mitigations(backends)
        assert first.registry_changes == [] and first.audit_error is None
        await fetch_mitigations(backends)
        assert len(reads) == 1  # no log yet, and still none: nothing to read again

        record = AuditLog.from_settings(settings).append(alias_move(settings, tui_stack.model))
        changed = await fetch_mitigations(backends)
        assert len(reads) == 2
        [change] = changed.registry_changes
        assert (change.seq, change.model, change.alias, change.before_version) == (
            record.seq,
            tui_stack.model,
            "champion",
            "2",
        )
        again = await fetch_mitigations(backends)
        assert len(reads) == 2 and again.registry_changes == changed.registry_changes
    finally:
        await backends.aclose()


async def test_certificate_checks_are_loaded_only_for_requests_that_may_use_tls(
    tui_stack: LabStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[ssl.SSLContext] = []
    real_context = http_adapter.ssl_context

    def counted(tls: Any, *, where: str = "") -> ssl.SSLContext:
        made.append(real_context(tls, where=where))
        return made[-1]

    monkeypatch.setattr(http_adapter, "ssl_context", counted)
    url = str(tui_stack.settings.prometheus.url).rstrip("/")
    client = http_adapter.make_client(url, 10, backend="prometheus")
    try:
        answer = await client.get("/api/v1/query", params={"query": "1"})
        assert answer.status_code == 200 and answer.json()["status"] == "success"
        assert made == []  # plain http to the stack: no CAs loaded
        with pytest.raises(httpx.ConnectError):  # nothing listens: the connection is refused
            await client.get(f"https://127.0.0.1:{free_port()}/")
        [context] = made  # made for the https request, checking certificates
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        with pytest.raises(httpx.ConnectError):
            await client.get(f"https://127.0.0.1:{free_port()}/")
        assert len(made) == 1  # made once per client
    finally:
        await client.aclose()
