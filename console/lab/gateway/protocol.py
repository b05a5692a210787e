"""Open Inference (V2) protocol: request validation and response bodies for the digits
contract (input ``input`` FP32 [N, 64], pixel values 0..16; outputs ``label`` INT64 [N] and
``probabilities`` FP32 [N, 10]).

A hardened client (console.adapters.policy.Hardening, passed as its ``X-AML-Output`` value)
gets reduced answers: ``label-only``
drops ``probabilities`` (only ``label`` is returned, whatever was asked), ``top1`` zeroes every
probability but the predicted class's, ``rounded`` rounds them to ``decimals``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from console.adapters.policy import parse_output
from console.lab.gateway.models import INPUT_NAME, INPUT_WIDTH, OUTPUTS

MAX_BODY_BYTES = 1024 * 1024
MAX_ROWS = 1024
PIXEL_MIN, PIXEL_MAX = 0.0, 16.0


class RequestError(Exception):
    """A request the gateway refuses: HTTP ``status``, ``reason`` a short metric label."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    x: NDArray[np.float32]
    outputs: tuple[str, ...]


def parse_infer(body: bytes) -> InferRequest:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "not_json", "request body is not valid JSON") from None
    except RecursionError:
        # json's C scanner counts its depth against the interpreter's recursion limit, so the
        # parse stops after about a thousand levels: bounded, and a V2 body needs four.
        raise RequestError(400, "too_deep", "request body is nested too deeply") from None
    if not isinstance(doc, dict):
        raise RequestError(400, "schema", "request body must be a JSON object with 'inputs'")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise RequestError(
            400, "schema", f"'inputs' must be a list with exactly one tensor named {INPUT_NAME!r}"
        )
    tensor: dict[str, Any] = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise RequestError(
            400, "schema", f"input tensor must be named {INPUT_NAME!r}, got {tensor.get('name')!r}"
        )
    if tensor.get("datatype") != "FP32":
        raise RequestError(
            400, "datatype", f"input datatype must be 'FP32', got {tensor.get('datatype')!r}"
        )
    rows = _check_shape(tensor.get("shape"))
    x = _values(tensor.get("data"), rows)
    request_id = doc.get("id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > 128):
        raise RequestError(400, "schema", "'id' must be a string of at most 128 characters")
    return InferRequest(request_id, x, _outputs(doc.get("outputs")))


def _check_shape(shape: Any) -> int:
    valid = (
        isinstance(shape, list)
        and len(shape) == 2
        and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
    )
    if not valid or shape[1] != INPUT_WIDTH or not 1 <= shape[0] <= MAX_ROWS:
        raise RequestError(
            400,
            "shape",
            f"input shape must be [N, {INPUT_WIDTH}] with 1 <= N <= {MAX_ROWS}, got {shape!r}",
        )
    return int(shape[0])


def _values(data: Any, rows: int) -> NDArray[np.float32]:
    if not isinstance(data, list):
        raise RequestError(400, "schema", "input 'data' must be a list of numbers")
    try:
        flat = np.asarray(data).reshape(-1)
    except (ValueError, TypeError):
        flat = np.asarray([None])  # ragged nesting: reported below like any non-number
    if flat.dtype.kind not in "iuf":
        raise RequestError(
            400, "schema", "input 'data' must hold only numbers (flat, or nested [N][64])"
        )
    flat = flat.astype(np.float64)
    if flat.size != rows * INPUT_WIDTH:
        raise RequestError(
            400,
            "shape",
            f"input 'data' has {flat.size} values; shape [{rows}, {INPUT_WIDTH}] needs "
            f"{rows * INPUT_WIDTH}",
        )
    if not np.isfinite(flat).all():
        index = int(np.flatnonzero(~np.isfinite(flat))[0])
        raise RequestError(
            400, "not_finite", f"input value {index} is {flat[index]}: NaN and infinity are refused"
        )
    low, high = float(flat.min()), float(flat.max())
    if low < PIXEL_MIN or high > PIXEL_MAX:
        bad = low if low < PIXEL_MIN else high
        raise RequestError(
            400,
            "value_range",
            f"input values must be pixel intensities within {PIXEL_MIN:g}..{PIXEL_MAX:g}, "
            f"got {bad:g}",
        )
    return flat.astype(np.float32).reshape(rows, INPUT_WIDTH)


def _outputs(requested: Any) -> tuple[str, ...]:
    if requested is None:
        return OUTPUTS
    names = (
        [o.get("name") for o in requested if isinstance(o, dict)]
        if isinstance(requested, list)
        else None
    )
    if not names or len(names) != len(requested) or set(names) - set(OUTPUTS):
        raise RequestError(
            400, "schema", f"'outputs' must name some of {list(OUTPUTS)}, got {requested!r}"
        )
    return tuple(n for n in OUTPUTS if n in names)


def infer_response(
    name: str,
    version: str,
    request_id: str,
    labels: NDArray[np.int64],
    probabilities: NDArray[np.float32],
    outputs: tuple[str, ...],
    output: str = "",
) -> dict[str, Any]:
    """``output``: an ``X-AML-Output`` value (empty: full answers)."""
    decimals = 7  # float32 printed as Python floats is 17 digits of noise
    values = probabilities.astype(np.float64)
    hardening = parse_output(output)
    if hardening is not None:
        mode, kept = hardening
        if mode == "label-only":
            outputs = ("label",)
        elif mode == "top1":
            rows = np.arange(values.shape[0])
            top = np.zeros_like(values)
            top[rows, labels] = values[rows, labels]
            values = top
        else:
            decimals = min(decimals, kept)
    tensors = {
        "label": {
            "name": "label",
            "shape": [int(labels.shape[0])],
            "datatype": "INT64",
            "data": labels.tolist(),
        },
        "probabilities": {
            "name": "probabilities",
            "shape": [int(probabilities.shape[0]), int(probabilities.shape[1])],
            "datatype": "FP32",
            "data": np.round(values, decimals).reshape(-1).tolist(),
        },
    }
    return {
        "model_name": name,
        "model_version": version,
        "id": request_id,
        "outputs": [tensors[o] for o in outputs],
    }


def model_metadata(name: str, version: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "versions": [version] if version else [],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, INPUT_WIDTH]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
        ],
    }
