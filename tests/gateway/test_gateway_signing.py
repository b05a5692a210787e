"""Signed artifacts at the gateway (in-process app, lifespan running, the session lab's real
MLflow and the lab's signing key): a properly signed champion is served; an unsigned one and a
swapped artifact whose sha256 tag was rewritten to match are refused with their reasons, which
are also load-failure reasons in ``aml_model_load_failures_total``; the good version is kept.
A hostile ``onnx_sha256`` tag reaches the log quoted, on one line."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from gateway_support import body, digits
from signing_support import (
    artifacts_of,
    on_registry,
    register_signed,
    register_unsigned,
    set_champion,
    swap_artifact,
)

from console.adapters.mlflow import MlflowRegistry
from console.lab.seed import SeededModel

pytestmark = pytest.mark.asyncio


async def _until(check: Any, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def _meta(gw: Any, model: str) -> dict[str, Any]:
    answer: dict[str, Any] = (await gw.client.get(f"/v2/models/{model}")).json()
    return answer


async def _served_version(gw: Any, model: str) -> str:
    got = await gw.client.post(
        f"/v2/models/{model}/infer", json=body(digits(1)), headers={"X-Client-Id": "alice"}
    )
    assert got.status_code == 200, got.text
    return str(got.json()["model_version"])


async def _refused(gw: Any, model: str, version: str) -> dict[str, Any]:
    async def seen() -> bool:
        refusal = (await _meta(gw, model))["aml"]["last_refusal"] or {}
        return refusal.get("version") == version

    assert await _until(seen), await _meta(gw, model)
    refusal: dict[str, Any] = (await _meta(gw, model))["aml"]["last_refusal"]
    return refusal


async def test_signed_served_unsigned_and_swapped_refused(
    lab: Any, start_in_process: Any, seeded_model: SeededModel
) -> None:
    model = seeded_model.name
    logreg, mlp = artifacts_of(lab, seeded_model)
    gw = await start_in_process(model)

    async def serving(version: str) -> bool:
        return (await _meta(gw, model))["versions"] == [version]

    # The seed's champion is signed by the lab: served.
    assert await _until(lambda: serving(seeded_model.champion))

    # A properly signed new version is served once it is champion.
    signed = await asyncio.to_thread(register_signed, lab, model, logreg)
    await asyncio.to_thread(set_champion, lab, model, signed)
    assert await _until(lambda: serving(signed))
    assert await _served_version(gw, model) == signed

    # An unsigned version (right sha256 tag) is refused; the signed one stays served.
    unsigned = await asyncio.to_thread(register_unsigned, lab, model, mlp)
    await asyncio.to_thread(set_champion, lab, model, unsigned)
    refusal = await _refused(gw, model, unsigned)
    assert refusal["reason"] == "unsigned"
    assert refusal["message"] == (
        f"{model} version {unsigned} is unsigned (no .sig beside its artifact)"
    )
    assert await _served_version(gw, model) == signed

    # Someone with registry write access swaps a signed version's artifact for another model
    # and rewrites its sha256 tag to match: the sha256 check passes, the signature does not.
    victim = await asyncio.to_thread(register_signed, lab, model, logreg)
    await asyncio.to_thread(swap_artifact, lab, model, victim, mlp)
    await asyncio.to_thread(set_champion, lab, model, victim)
    refusal = await _refused(gw, model, victim)
    assert refusal["reason"] == "bad_signature"
    assert f"{model} version {victim}: the signature does not verify" in refusal["message"]
    assert "\n" not in refusal["message"] and "PRIVATE" not in refusal["message"]
    assert await _served_version(gw, model) == signed

    text = (await gw.client.get("/metrics")).text
    for reason in ("unsigned", "bad_signature"):
        line = f'aml_model_load_failures_total{{model="{model}",reason="{reason}"}} 1.0'
        assert line in text, reason

    # A gateway that starts on the swapped champion serves nothing, and says why.
    fresh = await start_in_process(model)

    async def explains() -> bool:
        got = await fresh.client.get("/v2/health/ready")
        return got.status_code == 503 and "signature does not verify" in got.text

    assert await _until(explains)


async def test_a_gateway_without_keys_serves_unsigned_versions_and_required_refuses(
    lab: Any, start_in_process: Any, seeded_model: SeededModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key configured and none in the run dir: verification is skipped (the gateway logs
    why); with ``signing_required`` a version is refused ``no_signing_key``."""
    model = seeded_model.name
    logreg, _ = artifacts_of(lab, seeded_model)
    unsigned = await asyncio.to_thread(register_unsigned, lab, model, logreg)
    await asyncio.to_thread(set_champion, lab, model, unsigned)
    monkeypatch.setenv("CONSOLE_MODELS__SIGNING_PUBLIC_KEYS", "[]")
    monkeypatch.setenv("CONSOLE_MODELS__SIGNING_KEY", "/nonexistent/model-signing.key")
    open_gw = await start_in_process(model)

    async def serving() -> bool:
        return (await _meta(open_gw, model))["versions"] == [unsigned]

    assert await _until(serving)

    monkeypatch.setenv("CONSOLE_MODELS__SIGNING_REQUIRED", "true")
    strict = await start_in_process(model)
    refusal = await _refused(strict, model, unsigned)
    assert refusal["reason"] == "no_signing_key"
    assert "signatures are required and no public key is configured" in refusal["message"]


async def test_a_hostile_sha256_tag_reaches_the_log_quoted_on_one_line(
    lab: Any, start_in_process: Any, seeded_model: SeededModel, caplog: pytest.LogCaptureFixture
) -> None:
    """The ``onnx_sha256`` tag is anyone's text: a newline and terminal escapes in it would
    forge gateway log lines. The refusal shows it quoted (``repr``) and cut to 64 characters."""
    model = seeded_model.name
    hostile = "\x1b[2J\x1b]0;pwned\x07abc\nFAKE LOG LINE: model served " + "x" * 200

    def retag() -> None:
        async def write(registry: MlflowRegistry) -> None:
            await registry.set_version_tags(model, seeded_model.champion, {"onnx_sha256": hostile})

        on_registry(lab, write)

    await asyncio.to_thread(retag)
    caplog.set_level(logging.ERROR, logger="console.lab.gateway.models")
    gw = await start_in_process(model)
    refusal = await _refused(gw, model, seeded_model.champion)
    assert refusal["reason"] == "sha256_mismatch"
    message = refusal["message"]
    assert "\n" not in message and "\x1b" not in message and "\x07" not in message
    assert f"onnx_sha256 tag {hostile[:64]!r}" in message
    logged = [r.getMessage() for r in caplog.records if "refused version" in r.getMessage()]
    assert logged and all("\n" not in line and "\x1b" not in line for line in logged)
