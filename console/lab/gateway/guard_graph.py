"""Feature squeezing inside the served model's ONNX graph.

The gateway scores every request by how much the model's probabilities move when the input is
squeezed (``console.detectors.squeezing`` is the same computation in numpy, and the reference
the tests hold this graph to). Done in numpy, the squeezing and scoring are a dozen small array
calls per request, and on the lab's model (a 40 us call) their fixed per-call cost is several
times the model's. Here they are nodes of one graph around the model:

    input -> [input; squeeze_1(input); ...] -> model -> probabilities (first N rows)
                                                     -> squeeze_score (N,)
                                                     -> label_all ((1 + squeezers) * N)

``squeeze_score`` = min(1, max over squeezers of |p(squeezed) - p(input)|_1 / 2), per row.
Only operators whose signatures have not changed since opset 13 are used (Mul, Round, Gather,
TopK, Add, Concat, Reshape, Sub, Abs, MatMul, Max, Min, Identity), so any model of the
gateway's contract (input ``input`` [N, 64] float, outputs ``label`` [N] and ``probabilities``
[N, C]) can be wrapped. The artifact's sha256 is checked before this runs; the wrapped graph
exists only in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from console.detectors.squeezing import PIXEL_MAX, median_window_index

SCORE_OUTPUT = "squeeze_score"
LABEL_ALL_OUTPUT = "label_all"
"""The model's labels of every row of the batch (the input's first): slicing the first N in
numpy is a view, cheaper than two graph nodes."""
_INPUT, _LABEL, _PROBABILITIES = "input", "label", "probabilities"
_PREFIX = "aml_guard_"

Namer = Callable[[str], str]
"""A tensor name of the guard (prefixed so it cannot collide with the model's)."""
Constant = Callable[[str, NDArray[Any]], str]
"""Adds an initializer; returns its name."""


class GraphError(Exception):
    """The model cannot be wrapped (not ONNX, or not the gateway's contract)."""


def with_squeeze_score(model_bytes: bytes, squeezers: Sequence[str]) -> bytes:
    """The serialized model with ``squeeze_score`` added and ``label`` replaced by
    ``label_all`` (``squeezers``: ``SQUEEZERS`` names, at least one)."""
    if not squeezers:
        raise GraphError("no squeezer: serve the model as it is")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise GraphError(f"not an ONNX model: {exc}") from None
    graph = model.graph
    outputs = {o.name: o for o in graph.output}
    if [i.name for i in graph.input] != [_INPUT] or {_LABEL, _PROBABILITIES} - set(outputs):
        raise GraphError(
            f"expected input {_INPUT!r} and outputs {_LABEL!r}, {_PROBABILITIES!r}; got inputs "
            f"{[i.name for i in graph.input]} and outputs {sorted(outputs)}"
        )
    dims = outputs[_PROBABILITIES].type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].HasField("dim_value"):
        raise GraphError("the probabilities output needs a static class count ([N, C])")
    classes = int(dims[1].dim_value)

    def name(suffix: str) -> str:
        return _PREFIX + suffix

    x_all, probabilities_all = name("x_all"), name("p_all")
    _rename(graph, {_INPUT: x_all, _LABEL: LABEL_ALL_OUTPUT, _PROBABILITIES: probabilities_all})
    for value_info in [v for v in graph.value_info if v.name in (_LABEL, _PROBABILITIES)]:
        graph.value_info.remove(value_info)
    for output in graph.output:
        if output.name == _LABEL:
            output.name = LABEL_ALL_OUTPUT

    constants: list[Any] = []

    def const(suffix: str, value: NDArray[Any]) -> str:
        constants.append(numpy_helper.from_array(value, name(suffix)))
        return name(suffix)

    before: list[Any] = []
    squeezed = []
    for i, squeezer in enumerate(squeezers):
        out = name(f"sq{i}")
        before += _squeeze_nodes(squeezer, _INPUT, out, f"{i}", name, const)
        squeezed.append(out)
    before.append(helper.make_node("Concat", [_INPUT, *squeezed], [x_all], axis=0))

    copies = len(squeezers) + 1
    p3 = name("p_by_copy")
    after = [
        helper.make_node(
            "Reshape",
            [probabilities_all, const("p_shape", np.array([copies, -1, classes], np.int64))],
            [p3],
        ),
        helper.make_node(
            "Gather", [p3, const("zero", np.array(0, np.int64))], [_PROBABILITIES], axis=0
        ),
    ]
    # Halved ones: the MatMul sums |difference| over the classes and halves it in one node.
    halves = const("halves", np.full(classes, 0.5, dtype=np.float32))
    distances = []
    for i in range(1, copies):
        p_i, diff, absolute, dist = (name(f"{s}{i}") for s in ("p_copy", "diff", "abs", "dist"))
        after += [
            helper.make_node("Gather", [p3, const(f"i{i}", np.array(i, np.int64))], [p_i], axis=0),
            helper.make_node("Sub", [p_i, _PROBABILITIES], [diff]),
            helper.make_node("Abs", [diff], [absolute]),
            helper.make_node("MatMul", [absolute, halves], [dist]),
        ]
        distances.append(dist)
    one = const("one", np.array(1.0, np.float32))
    after.append(helper.make_node("Min", [*distances, one], [SCORE_OUTPUT]))
    if len(distances) > 1:  # Min over (max of the distances, 1)
        after[-1:] = [
            helper.make_node("Max", distances, [name("largest")]),
            helper.make_node("Min", [name("largest"), one], [SCORE_OUTPUT]),
        ]

    nodes = [*before, *graph.node, *after]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(constants)
    graph.output.append(helper.make_tensor_value_info(SCORE_OUTPUT, TensorProto.FLOAT, [None]))
    return bytes(model.SerializeToString())


def _squeeze_nodes(
    squeezer: str, source: str, out: str, tag: str, name: Namer, const: Constant
) -> list[Any]:
    from onnx import helper

    if squeezer.startswith("bits"):
        levels = float(2 ** int(squeezer.removeprefix("bits")) - 1)
        scaled, rounded = name(f"scaled{tag}"), name(f"rounded{tag}")
        return [
            helper.make_node(
                "Mul",
                [source, const(f"scale{tag}", np.array(levels / PIXEL_MAX, np.float32))],
                [scaled],
            ),
            helper.make_node("Round", [scaled], [rounded]),
            helper.make_node(
                "Mul",
                [rounded, const(f"step{tag}", np.array(PIXEL_MAX / levels, np.float32))],
                [out],
            ),
        ]
    if squeezer.startswith("median"):
        size = int(squeezer.removeprefix("median"))
        index = median_window_index(size)  # [64, size*size] pixel indices, border reflected
        count = size * size
        windows, top = name(f"windows{tag}"), name(f"top{tag}")
        keep = count // 2 + 1  # the largest half and the middle: the median is the last kept
        nodes = [
            helper.make_node(
                "Gather", [source, const(f"index{tag}", index.astype(np.int64))], [windows], axis=1
            ),
            helper.make_node(
                "TopK",
                [windows, const(f"k{tag}", np.array([keep], np.int64))],
                [top, name(f"top_index{tag}")],
                axis=-1,
                largest=1,
                sorted=1,
            ),
        ]
        if count % 2:
            last = const(f"last{tag}", np.array(keep - 1, np.int64))
            return [*nodes, helper.make_node("Gather", [top, last], [out], axis=2)]
        # Even window: the mean of the two middle values, the last two kept.
        lower, upper, total = name(f"lower{tag}"), name(f"upper{tag}"), name(f"total{tag}")
        return [
            *nodes,
            helper.make_node(
                "Gather", [top, const(f"lo{tag}", np.array(keep - 2, np.int64))], [upper], axis=2
            ),
            helper.make_node(
                "Gather", [top, const(f"hi{tag}", np.array(keep - 1, np.int64))], [lower], axis=2
            ),
            helper.make_node("Add", [upper, lower], [total]),
            helper.make_node("Mul", [total, const(f"mid{tag}", np.array(0.5, np.float32))], [out]),
        ]
    raise GraphError(f"unknown squeezer {squeezer!r}")


def _rename(graph: Any, mapping: Mapping[str, str]) -> None:
    """Rename tensors in every node of ``graph`` and of its subgraphs (If, Loop, Scan)."""
    from onnx import AttributeProto

    for node in graph.node:
        for i, value in enumerate(node.input):
            node.input[i] = mapping.get(value, value)
        for i, value in enumerate(node.output):
            node.output[i] = mapping.get(value, value)
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                _rename(attribute.g, mapping)
            elif attribute.type == AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    _rename(sub, mapping)


__all__ = ["LABEL_ALL_OUTPUT", "SCORE_OUTPUT", "GraphError", "with_squeeze_score"]
