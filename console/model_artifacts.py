"""ONNX artifacts of registry versions: the sha256 check against a version's ``onnx_sha256`` tag
and onnxruntime sessions checked against the digits contract. Shared by the lab gateway and
replay, so both refuse the same artifacts for the same reasons (``ArtifactRefused.reason``).

Artifacts are only ever loaded by onnxruntime: nothing is unpickled. Downloading is the
registry adapter's job (``MlflowRegistry.download_artifact``).

Contract: input ``input`` float32 ``[N, 64]`` (8x8 pixels, 0..16); outputs ``label`` int64
``[N]`` and ``probabilities`` float32 ``[N, classes]``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from console.errors import ArtifactRefused

INPUT_NAME, INPUT_WIDTH = "input", 64
OUTPUTS = ("label", "probabilities")
_HEX = re.compile(r"[0-9A-Fa-f]{1,64}")


def check_sha256(model: str, version: str, expected: str, onnx: bytes) -> str:
    """The artifact's sha256 if it equals the ``onnx_sha256`` tag ``expected``; otherwise
    ArtifactRefused naming the version and both hashes, the tag as ``shown_tag`` shows it
    (``missing_sha256`` when the version has no tag: an artifact nobody vouched for is not
    run)."""
    actual = hashlib.sha256(onnx).hexdigest()
    tag = expected.strip().lower()
    if not tag:
        raise ArtifactRefused(
            "missing_sha256",
            f"{model} version {version} has no onnx_sha256 tag (artifact sha256 {actual}): "
            "an unverified artifact is never run",
        )
    if actual != tag:
        raise ArtifactRefused(
            "sha256_mismatch",
            f"{model} version {version}: artifact sha256 {actual} does not match the "
            f"onnx_sha256 tag {shown_tag(expected)}",
        )
    return actual


def shown_tag(value: str) -> str:
    """A tag's value as a message may show it: a hex digest as it is; anything else (anyone
    with registry write access writes tags) quoted by ``repr`` and cut to 64 characters, so no
    newline or terminal escape reaches a log line."""
    text = value.strip()
    if _HEX.fullmatch(text):
        return text
    return repr(text[:64])


def session_options(threads: int = 1) -> Any:
    """onnxruntime options with ``threads`` intra-op threads and one inter-op thread.

    One thread by default: the gateway's requests are a few rows, where a pool's spin-up costs
    more than it saves, and on 2 shared cores one thread also ran replay's batches of 1024 rows
    fastest (docs/architecture.md, Replay)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def make_plain_session(onnx: bytes, threads: int = 1) -> Any:
    """An onnxruntime session of the model as it is, checked against the digits contract (the
    names, and a test run of 2 rows). Raises ArtifactRefused (``invalid_onnx``,
    ``contract_mismatch``)."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(
            onnx, sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise ArtifactRefused(
            "invalid_onnx", f"not a loadable ONNX model: {short_error(exc)}"
        ) from None
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if INPUT_NAME not in inputs or set(OUTPUTS) - outputs:
        raise ArtifactRefused(
            "contract_mismatch",
            f"expected input {INPUT_NAME!r} and outputs {list(OUTPUTS)}, "
            f"got inputs {sorted(inputs)} and outputs {sorted(outputs)}",
        )
    try:
        labels, probabilities = session.run(
            list(OUTPUTS), {INPUT_NAME: np.zeros((2, INPUT_WIDTH), np.float32)}
        )
    except Exception as exc:  # shape or type mismatch inside the graph
        raise ArtifactRefused("contract_mismatch", f"test run failed: {short_error(exc)}") from None
    if np.shape(labels) != (2,) or np.shape(probabilities)[0] != 2:
        raise ArtifactRefused(
            "contract_mismatch",
            f"test run gave shapes {np.shape(labels)} and {np.shape(probabilities)}",
        )
    return session


def short_error(exc: BaseException) -> str:
    """The first line of an exception's text, at most 300 characters."""
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


__all__ = [
    "INPUT_NAME",
    "INPUT_WIDTH",
    "OUTPUTS",
    "check_sha256",
    "make_plain_session",
    "session_options",
    "short_error",
    "shown_tag",
]
