"""A linear model's weights, read from the ONNX file (no onnx, no torch): `toolkit info`'s
equations.

Recognised: the output computed by one Gemm on the input (toolkit's exports, with or
without a bias; any alpha, beta and transB, transA 0), or by MatMul on the input, with or
without an Add of a bias. The weights must be initializers stored in the file (float or
double). Anything else gives None: the equation is then not shown rather than guessed.
Read exactly as stored (no run through onnxruntime, whose float32 differences would blur
small weights next to a large bias).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.runtime import onnxfile
from toolkit.runtime.onnxfile import tensor_array as _array


def linear_weights(
    data: bytes, input_name: str, output_name: str, n_features: int, n_targets: int
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(weight (n_targets, n_features), bias (n_targets,) or None) in float64, or None."""
    graph = onnxfile.parse_proto(data).graph
    tensors = {onnxfile.text(t.name): t for t in graph.initializer}
    producers = {onnxfile.text(o): n for n in graph.node for o in n.output}
    node = producers.get(output_name)
    bias_name = None
    if node is not None and onnxfile.text(node.op_type) == "Add" and len(node.input) == 2:
        left, right = (onnxfile.text(name) for name in node.input)
        matmul, bias_name = (left, right) if right in tensors else (right, left)
        node = producers.get(matmul)
        if node is None or onnxfile.text(node.op_type) != "MatMul":
            return None
    if node is None or onnxfile.text(node.domain) not in ("", "ai.onnx"):
        return None
    names = [onnxfile.text(name) for name in node.input]
    if not names or names[0] != input_name:
        return None
    op_type = onnxfile.text(node.op_type)
    if op_type == "Gemm" and len(names) in (2, 3):
        found = _gemm(node, tensors, names)
    elif op_type == "MatMul" and len(names) == 2:
        found = _matmul(tensors, names[1], bias_name)
    else:
        return None
    if found is None or found[0].shape != (n_targets, n_features):
        return None
    weight, bias = found
    return weight, None if bias is None else _as_row(bias, n_targets)


def _gemm(
    node: Any, tensors: dict[str, Any], names: list[str]
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Y = alpha * A B' + beta * C with A the input: weight alpha B'^T, bias beta C."""
    attributes = {onnxfile.text(a.name): a for a in node.attribute}
    alpha = attributes["alpha"].f if "alpha" in attributes else 1.0
    beta = attributes["beta"].f if "beta" in attributes else 1.0
    if "transA" in attributes and attributes["transA"].i != 0:
        return None
    trans_b = "transB" in attributes and attributes["transB"].i != 0
    b = _array(tensors.get(names[1]))
    if b is None or b.ndim != 2:
        return None
    weight = alpha * (b if trans_b else b.T)
    if len(names) == 2 or not names[2]:
        return weight, None
    c = _array(tensors.get(names[2]))
    return None if c is None else (weight, beta * c)


def _matmul(
    tensors: dict[str, Any], weight_name: str, bias_name: str | None
) -> tuple[np.ndarray, np.ndarray | None] | None:
    b = _array(tensors.get(weight_name))
    if b is None or b.ndim != 2:
        return None
    if bias_name is None:
        return b.T, None
    c = _array(tensors.get(bias_name))
    return None if c is None else (b.T, c)


def _as_row(bias: np.ndarray, n_targets: int) -> np.ndarray | None:
    """A bias that broadcasts onto (n, n_targets) along the targets only, as (n_targets,)."""
    if bias.ndim > 2 or (bias.ndim == 2 and bias.shape[0] != 1):
        return None
    flat = bias.reshape(-1)
    if flat.size not in (1, n_targets):
        return None
    return np.broadcast_to(flat, (n_targets,)).copy()
