"""The model store: each configured model's ``champion`` version, loaded from its ONNX artifact
after checking the artifact's sha256 against the version's ``onnx_sha256`` tag, then its
signature (``<artifact>.sig``, OpenSSF model-signing) against the configured public keys.

A version that fails (hash mismatch, missing tag, unsigned, bad signature, download error, not
a valid ONNX model, wrong input/output contract) is refused: the store keeps serving the version
it had, records why, and tries that version again only after ``retry_s``. Artifacts are never
unpickled: onnxruntime only. The download, the hash, signature and contract checks are shared
with replay
(``MlflowRegistry.download_artifact``, ``console.model_artifacts``, ``console.model_signing``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from console import model_signing
from console.adapters.http import make_client
from console.adapters.mlflow import MAX_ARTIFACT_BYTES, MlflowRegistry
from console.errors import AdapterError, ArtifactRefused
from console.lab.gateway.guard_graph import (
    LABEL_ALL_OUTPUT,
    SCORE_OUTPUT,
    GraphError,
    with_squeeze_score,
)
from console.model_artifacts import (
    INPUT_NAME,
    INPUT_WIDTH,
    OUTPUTS,
    check_sha256,
    make_plain_session,
    session_options,
)

log = logging.getLogger(__name__)

ALIAS = "champion"
GUARDED_OUTPUTS = [LABEL_ALL_OUTPUT, "probabilities", SCORE_OUTPUT]

LoadRefused = ArtifactRefused
"""A version was not loaded; ``reason`` is a short metric label (the shared artifact error)."""

__all__ = [
    "ALIAS",
    "GUARDED_OUTPUTS",
    "INPUT_NAME",
    "INPUT_WIDTH",
    "MAX_ARTIFACT_BYTES",
    "OUTPUTS",
    "LoadFailure",
    "LoadRefused",
    "LoadedModel",
    "ModelSlot",
    "ModelStore",
    "make_plain_session",
    "make_session",
    "verify_and_load",
]


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    sha256: str
    loaded_at: datetime
    session: Any
    """An ``onnxruntime.InferenceSession`` (untyped library)."""
    guarded: bool = False
    """The session's graph computes the squeeze score too (``guard_graph``)."""

    def run(
        self, x: NDArray[np.float32]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.float32]]:
        """Labels, probabilities and feature-squeezing scores (zeros if not guarded) of ``x``."""
        if self.guarded:
            labels, probabilities, scores = self.session.run(GUARDED_OUTPUTS, {INPUT_NAME: x})
            return (
                np.asarray(labels[: x.shape[0]], dtype=np.int64),
                np.asarray(probabilities, dtype=np.float32),
                np.asarray(scores, dtype=np.float32),
            )
        labels, probabilities = self.session.run(list(OUTPUTS), {INPUT_NAME: x})
        return (
            np.asarray(labels, dtype=np.int64),
            np.asarray(probabilities, dtype=np.float32),
            np.zeros(x.shape[0], dtype=np.float32),
        )


@dataclass(frozen=True)
class LoadFailure:
    version: str
    reason: str
    message: str
    at: datetime
    retry_at: float
    """``time.monotonic()`` after which this version may be tried again."""

    def as_dict(self) -> dict[str, str]:
        return {
            "version": self.version,
            "reason": self.reason,
            "message": self.message,
            "at": self.at.isoformat(),
        }


@dataclass
class ModelSlot:
    name: str
    current: LoadedModel | None = None
    champion: str | None = None
    """The version the alias pointed at on the last successful registry read."""
    failure: LoadFailure | None = None
    registry_error: str | None = None


def make_session(onnx: bytes, squeezers: Sequence[str] = ()) -> Any:
    """An onnxruntime session for ``onnx``, checked against the digits contract; with
    ``squeezers``, of the graph wrapped by ``guard_graph`` (outputs ``GUARDED_OUTPUTS``)."""
    import onnxruntime

    plain = make_plain_session(onnx)
    if not squeezers:
        return plain
    try:
        guarded = with_squeeze_score(onnx, squeezers)
    except GraphError as exc:
        raise LoadRefused("contract_mismatch", f"cannot add the squeeze score: {exc}") from None
    return onnxruntime.InferenceSession(
        guarded, sess_options=session_options(), providers=["CPUExecutionProvider"]
    )


def verify_and_load(
    name: str,
    version: str,
    expected_sha: str,
    onnx: bytes,
    squeezers: Sequence[str] = (),
    *,
    signing: model_signing.SigningPolicy | None = None,
    signature: bytes | None = None,
) -> LoadedModel:
    """Check the hash, then the signature (when ``signing`` verifies or requires one), then
    build the session, guarded by ``squeezers`` (CPU work: run it in a thread)."""
    actual = check_sha256(name, version, expected_sha, onnx)
    if signing is not None:
        model_signing.check(signing, name, version, onnx, signature)
    session = make_session(onnx, squeezers)
    return LoadedModel(name, version, actual, datetime.now(UTC), session, bool(squeezers))


class ModelStore:
    """Follows each model's champion alias; ``get(name)`` is what requests use (lock-free: a
    swap is one attribute assignment)."""

    def __init__(
        self,
        names: list[str],
        mlflow_url: str,
        timeout_s: float,
        *,
        on_failure: Callable[[str, str], None] | None = None,
        on_loaded: Callable[[LoadedModel, LoadedModel | None], None] | None = None,
        retry_s: float = 30.0,
        squeezers: Sequence[str] = (),
        signing: model_signing.SigningPolicy | None = None,
    ) -> None:
        """``signing``: the public keys versions must be signed by (None: not checked)."""
        self.slots = {name: ModelSlot(name) for name in names}
        self._http = make_client(mlflow_url, timeout_s, trust_env=False)
        self._registry = MlflowRegistry(self._http)
        self._on_failure = on_failure
        self._on_loaded = on_loaded
        self._retry_s = retry_s
        self._squeezers = tuple(squeezers)
        self._signing = signing
        if signing is not None and signing.skipped is not None:
            log.warning("model store: %s (serving versions unverified)", signing.skipped)

    async def aclose(self) -> None:
        await self._http.aclose()

    def get(self, name: str) -> LoadedModel | None:
        slot = self.slots.get(name)
        return None if slot is None else slot.current

    @property
    def ready(self) -> bool:
        return all(slot.current is not None for slot in self.slots.values())

    async def refresh(self) -> None:
        """Read every champion alias and load any version that changed."""
        await asyncio.gather(*(self._refresh(slot) for slot in self.slots.values()))

    async def poll(self, interval_s: float) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(interval_s)

    async def _refresh(self, slot: ModelSlot) -> None:
        try:
            model = await self._registry.get_model(slot.name)
        except AdapterError as exc:
            self._registry_problem(slot, f"registry unreachable: {exc}")
            return
        version = model.aliases.get(ALIAS) if model else None
        if version is None:
            what = "not in the registry" if model is None else f"has no {ALIAS!r} alias"
            self._registry_problem(slot, f"model {slot.name!r} {what}")
            return
        slot.registry_error = None
        slot.champion = version
        if slot.current is not None and slot.current.version == version:
            if slot.failure is not None and slot.failure.version != version:
                slot.failure = None  # the alias moved back to what we serve
            return
        failure = slot.failure
        if failure and failure.version == version and time.monotonic() < failure.retry_at:
            return
        await self._load(slot, version)

    async def _load(self, slot: ModelSlot, version: str) -> None:
        try:
            found = await self._registry.get_version(slot.name, version)
            if found is None:
                raise LoadRefused("not_found", f"version {version} is not in the registry")
            onnx, signature = await asyncio.gather(
                self._download(slot.name, version), self._signature(slot.name, version)
            )
            loaded = await asyncio.to_thread(
                functools.partial(
                    verify_and_load,
                    slot.name,
                    version,
                    found.tags.get("onnx_sha256", ""),
                    onnx,
                    self._squeezers,
                    signing=self._signing,
                    signature=signature,
                )
            )
        except LoadRefused as exc:
            self._refuse(slot, version, exc.reason, str(exc))
            return
        except AdapterError as exc:
            self._refuse(slot, version, "download_failed", str(exc))
            return
        previous, slot.current, slot.failure = slot.current, loaded, None
        log.info(
            "model %s: serving version %s (sha256 %s)%s",
            slot.name,
            version,
            loaded.sha256[:12],
            f", was {previous.version}" if previous else "",
        )
        if self._on_loaded is not None:
            self._on_loaded(loaded, previous)

    async def _download(self, name: str, version: str) -> bytes:
        return await self._registry.download_artifact(name, version, MAX_ARTIFACT_BYTES)

    async def _signature(self, name: str, version: str) -> bytes | None:
        if self._signing is None or not (self._signing.verifies or self._signing.required):
            return None
        return await self._registry.download_sibling(
            name,
            version,
            model_signing.SIGNATURE_SUFFIX,
            model_signing.MAX_SIGNATURE_BYTES,
        )

    def _refuse(self, slot: ModelSlot, version: str, reason: str, message: str) -> None:
        serving = slot.current.version if slot.current else "nothing"
        log.error(
            "model %s: refused version %s (%s): %s; still serving %s",
            slot.name,
            version,
            reason,
            message,
            serving,
        )
        slot.failure = LoadFailure(
            version, reason, message, datetime.now(UTC), time.monotonic() + self._retry_s
        )
        if self._on_failure is not None:
            self._on_failure(slot.name, reason)

    @staticmethod
    def _registry_problem(slot: ModelSlot, message: str) -> None:
        if slot.registry_error != message:
            log.warning(
                "model %s: %s; still serving %s",
                slot.name,
                message,
                slot.current.version if slot.current else "nothing",
            )
        slot.registry_error = message
