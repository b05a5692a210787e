"""An MLServer inference runtime for the registry's ONNX contract (input ``input`` FP32 [N, 64],
outputs ``label`` INT64 and ``probabilities`` FP32 [N, classes]), used by the replay tests.

It runs inside MLServer's own virtualenv (``.aml-venvs/mlserver``, made by ``.ci/install``), not
the console's: it imports only MLServer, onnxruntime and numpy, never ``console``. One instance
per model version: MLServer reads ``parameters.uri`` (the ONNX file) and ``parameters.version``
from each version's model-settings.json, with ``"implementation": "onnx_contract.OnnxContract"``
(this folder on MLServer's PYTHONPATH).
"""

from __future__ import annotations

import numpy as np
import onnxruntime
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

INPUT = "input"
WIDTH = 64
OUTPUTS = ("label", "probabilities")


class OnnxContract(MLModel):
    """One ONNX artifact on onnxruntime's CPU provider, one thread (the tests share 2 cores)."""

    async def load(self) -> bool:
        path = await get_model_uri(self.settings)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        tensors = {tensor.name: tensor for tensor in payload.inputs}
        if INPUT not in tensors:
            raise InferenceError(f"no input tensor {INPUT!r} (got {sorted(tensors)})")
        tensor = tensors[INPUT]
        if tensor.datatype != "FP32":
            raise InferenceError(f"input {INPUT!r} must be FP32, not {tensor.datatype}")
        rows = NumpyCodec.decode_input(tensor)
        if rows.ndim != 2 or rows.shape[1] != WIDTH:
            raise InferenceError(f"input {INPUT!r} must be [N, {WIDTH}], not {list(rows.shape)}")
        asked = [o.name for o in payload.outputs] if payload.outputs else list(OUTPUTS)
        unknown = sorted(set(asked) - set(OUTPUTS))
        if unknown:
            raise InferenceError(f"unknown outputs {unknown}: this model has {list(OUTPUTS)}")
        labels, probabilities = self._session.run(list(OUTPUTS), {INPUT: rows})
        values = {
            "label": np.asarray(labels, dtype=np.int64),
            "probabilities": np.asarray(probabilities, dtype=np.float32),
        }
        return InferenceResponse(
            id=payload.id,
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name, values[name]) for name in asked],
        )
