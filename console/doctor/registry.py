"""Alertmanager (its version and receivers) and the MLflow registry (the served models, their
aliases and the ``onnx_sha256`` tags of the versions those aliases name)."""

from __future__ import annotations

import asyncio

from console.adapters.backends import Backends
from console.adapters.mlflow import MlflowRegistry, ModelVersion, RegisteredModel
from console.doctor.model import EndpointReport, Findings
from console.doctor.tls import credentials_of, tls_check
from console.errors import ConsoleError

ALIASES = ("champion", "previous")
"""What the gateway serves, and what a rollback goes back to."""
SHA_TAG = "onnx_sha256"


async def check_alertmanager(backends: Backends, findings: Findings) -> EndpointReport:
    section = backends.settings.alertmanager
    tls_check(findings, section)
    findings.start_clock()
    try:
        status = await backends.alertmanager.status()
    except ConsoleError as exc:
        findings.first_call_failed(exc, "Alertmanager's API")
        return findings.report()
    findings.answered(credentials_of(section))
    findings.version = status.version or None
    findings.passed("version", status.version or "not reported")
    if status.receivers:
        findings.passed("receiver", ", ".join(status.receivers))
    else:
        findings.failed(
            "receiver",
            "the loaded configuration has no receiver",
            "add a receiver (and route) to Alertmanager's configuration, so alerts reach someone",
        )
    return findings.report()


async def check_registry(backends: Backends, findings: Findings) -> EndpointReport:
    section = backends.settings.mlflow
    tls_check(findings, section)
    registry = backends.registry
    served = backends.settings.models.served
    findings.start_clock()
    try:
        first = await registry.get_model(served[0])
    except ConsoleError as exc:
        findings.first_call_failed(exc, "the MLflow tracking server")
        return findings.report()
    findings.answered(credentials_of(section))
    findings.version = await registry.server_version()
    findings.passed("version", findings.version or "not reported")
    rest = await asyncio.gather(
        *(registry.get_model(name) for name in served[1:]), return_exceptions=True
    )
    models: list[RegisteredModel | None | BaseException] = [first, *rest]
    for name, model in zip(served, models, strict=True):
        await _served_model(registry, findings, name, model)
    return findings.report()


async def _served_model(
    registry: MlflowRegistry,
    findings: Findings,
    name: str,
    model: RegisteredModel | None | BaseException,
) -> None:
    check = f"model {name}"
    if isinstance(model, ConsoleError):
        findings.call_failed(check, model, "see the tracking server's log")
        return
    if isinstance(model, BaseException):
        raise model
    if model is None:
        findings.failed(
            check,
            f"{name!r} is not in the registry",
            "check [models].served against the registry's model names (the lab registers "
            "digits: aml-console lab up)",
        )
        return
    missing = [alias for alias in ALIASES if alias not in model.aliases]
    if missing:
        findings.failed(
            check,
            f"no alias {', '.join(missing)} (aliases: {_aliases(model) or 'none'})",
            f"set the alias in the registry: champion is what the gateway serves, previous "
            f"what a rollback restores (model {name})",
        )
        return
    versions = sorted(set(model.aliases[a] for a in ALIASES))
    try:
        found = await asyncio.gather(*(registry.get_version(name, v) for v in versions))
    except ConsoleError as exc:
        findings.call_failed(check, exc, "see the tracking server's log")
        return
    untagged = [v for v, mv in zip(versions, found, strict=True) if not _tagged(mv)]
    if untagged:
        findings.failed(
            check,
            f"version {', '.join(untagged)} has no {SHA_TAG} tag ({_aliases(model)})",
            f"tag each served version with the sha256 of its ONNX artifact ({SHA_TAG}): "
            "the gateway and replay refuse to run an artifact without it",
        )
        return
    findings.passed(check, f"{_aliases(model)}; {SHA_TAG} on version {', '.join(versions)}")


def _tagged(version: ModelVersion | None) -> bool:
    return version is not None and bool(version.tags.get(SHA_TAG, "").strip())


def _aliases(model: RegisteredModel) -> str:
    return ", ".join(f"{a} -> v{v}" for a, v in sorted(model.aliases.items()))
