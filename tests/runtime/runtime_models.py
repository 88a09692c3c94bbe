"""Hand-built ONNX models and inputs shared by the tests of toolkit/runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# The seed model is y = x1 + x2 - 1 in float32. Inputs stay within [-10, 10], so the exact
# result is below 21 in magnitude and float32 rounding (weights, products, sum) stays
# within a few ulp of 16 (ulp 2**-19 ~ 1.9e-6): 1e-5 bounds it.
SEED_ATOL = 1e-5


def seed_math(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1, 2)
    return (x[:, 0] + x[:, 1] - 1)[:, None]


def linear_proto(
    weight: np.ndarray,
    bias: np.ndarray,
    batch: str | int = "batch",
    card: dict[str, str] | None = None,
) -> onnx.ModelProto:
    """A hand-built Gemm model (y = x W^T + b), with no model card unless one is given."""
    elem = TensorProto.DOUBLE if weight.dtype == np.float64 else TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["features", "weight", "bias"], ["prediction"], transB=1)],
        "linear",
        [helper.make_tensor_value_info("features", elem, [batch, weight.shape[1]])],
        [helper.make_tensor_value_info("prediction", elem, [batch, weight.shape[0]])],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    if card:
        helper.set_model_props(model, card)
    return model


WEIGHT = np.array([[2.0, -1.0, 0.5]], dtype=np.float32)
BIAS = np.array([4.0], dtype=np.float32)


def write_linear(path: Path, **kwargs) -> Path:
    onnx.save_model(linear_proto(WEIGHT, BIAS, **kwargs), path)
    return path


def graph_model(path: Path, nodes, inputs, outputs, initializers=(), opsets=(("", 18),)) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(*o) for o in opsets])
    model.ir_version = 10
    onnx.save_model(model, path)
    return path


def value(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def inputs_in_range(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-10, 10, (rows, 2)).astype(np.float32)
