"""Where the versions run: here with onnxruntime on artifacts whose sha256 was checked against
the registry and whose signature against the configured public keys (``LocalRunner``), or on a
remote Open Inference (V2) server (``RemoteRunner``). Both take the rows of one batch and return
labels and probabilities: one model call per version per batch."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from console import model_signing
from console.adapters.mlflow import MlflowRegistry
from console.adapters.open_inference import OpenInferenceClient
from console.errors import ArtifactRefused, ReplayError
from console.model_artifacts import INPUT_NAME, OUTPUTS, check_sha256, make_plain_session
from console.replay.model import VersionRef

Outputs = tuple[NDArray[np.int64], NDArray[np.float32]]


class Runner(Protocol):
    backend: str
    """Shown in the report: what ran the versions."""
    default_batch: int

    async def predict(self, ref: VersionRef, rows: NDArray[np.float32]) -> Outputs:
        """Labels [M] and probabilities [M, classes] of ``rows`` [M, 64] from ``ref``."""
        ...

    async def aclose(self) -> None: ...


class LocalRunner:
    """onnxruntime sessions of verified artifacts, one per version.

    A batch runs on the calling event loop, not in a thread: 1024 rows through one of the lab's
    models take 0.1-0.3 ms, and a hop to a worker thread costs ~50 us (docs/architecture.md,
    Replay). The replay loop yields to the event loop between batches, so a caller can still
    cancel or redraw."""

    backend = "local onnxruntime (artifacts sha256-verified)"
    """With ``signing`` that verifies: ``(artifacts sha256- and signature-verified)``."""
    default_batch = 1024

    def __init__(self, sessions: dict[str, Any]) -> None:
        self._sessions = sessions

    @classmethod
    async def prepare(
        cls,
        registry: MlflowRegistry,
        model: str,
        refs: list[VersionRef],
        threads: int = 1,
        *,
        signing: model_signing.SigningPolicy | None = None,
    ) -> LocalRunner:
        """Download every version's artifact (and, with ``signing``, its signature), check
        each sha256 against its ``onnx_sha256`` tag and each signature against the policy's
        public keys, then build the sessions. Raises ArtifactRefused before any session exists
        if one version fails, so nothing unverified ever runs."""
        blobs = await asyncio.gather(*(_download(registry, model, ref) for ref in refs))
        signatures = await asyncio.gather(
            *(_signature(registry, model, ref, signing) for ref in refs)
        )
        for ref, onnx in zip(refs, blobs, strict=True):
            check_sha256(model, ref.version, ref.sha256, onnx)
        if signing is not None:
            for ref, onnx, signature in zip(refs, blobs, signatures, strict=True):
                model_signing.check(signing, model, ref.version, onnx, signature)
        sessions: dict[str, Any] = {}
        for ref, onnx in zip(refs, blobs, strict=True):
            try:
                sessions[ref.version] = await asyncio.to_thread(make_plain_session, onnx, threads)
            except ArtifactRefused as exc:
                raise ArtifactRefused(exc.reason, f"{model} version {ref.version}: {exc}") from None
        runner = cls(sessions)
        if signing is not None and signing.verifies:
            runner.backend = "local onnxruntime (artifacts sha256- and signature-verified)"
        return runner

    async def predict(self, ref: VersionRef, rows: NDArray[np.float32]) -> Outputs:
        labels, probabilities = self._sessions[ref.version].run(list(OUTPUTS), {INPUT_NAME: rows})
        return np.asarray(labels, dtype=np.int64), np.asarray(probabilities, dtype=np.float32)

    async def aclose(self) -> None:
        self._sessions.clear()


async def _download(registry: MlflowRegistry, model: str, ref: VersionRef) -> bytes:
    try:
        return await registry.download_artifact(model, ref.version)
    except ArtifactRefused as exc:
        raise ArtifactRefused(exc.reason, f"{model} version {ref.version}: {exc}") from None


async def _signature(
    registry: MlflowRegistry,
    model: str,
    ref: VersionRef,
    signing: model_signing.SigningPolicy | None,
) -> bytes | None:
    if signing is None or not (signing.verifies or signing.required):
        return None
    try:
        return await registry.download_sibling(
            model,
            ref.version,
            model_signing.SIGNATURE_SUFFIX,
            model_signing.MAX_SIGNATURE_BYTES,
        )
    except ArtifactRefused as exc:
        raise ArtifactRefused(exc.reason, f"{model} version {ref.version}: {exc}") from None


class RemoteRunner:
    """A V2 server: one infer request per version per batch. The server's artifacts are its
    own business (nothing is downloaded or hash-checked here); a server that answers for
    another version than asked is refused."""

    default_batch = 256
    """Rows per request are this times (1 + squeezers): 512 rows of 64 values stay under the
    lab gateway's 1 MiB body and 1024-row limits."""

    def __init__(self, client: OpenInferenceClient, model: str) -> None:
        self._client = client
        self._model = model
        self.backend = f"V2 endpoint {client.url}"

    async def predict(self, ref: VersionRef, rows: NDArray[np.float32]) -> Outputs:
        answer = await self._client.infer(self._model, ref.version, rows)
        if answer.model_version not in (None, "", ref.version):
            raise ReplayError(
                f"{self._client.url} answered with {self._model} version "
                f"{answer.model_version!r} when asked for version {ref.version}"
            )
        return answer.labels, answer.probabilities

    async def aclose(self) -> None:
        await self._client.aclose()
