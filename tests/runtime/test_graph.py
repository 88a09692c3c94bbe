"""toolkit/runtime/graph.py: only the operators a linear model needs, outputs from the input.

Refused before onnxruntime opens the file: loops and branches (unbounded work), other
operators, local functions, outputs that ignore the input or are the input. Accepted and
correct: toolkit's own exports and the usual linear graphs of other exporters.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import local_function_model
from onnx import TensorProto, helper, numpy_helper
from runtime_models import BIAS, SEED_ATOL, WEIGHT, graph_model, inputs_in_range, seed_math, value

from toolkit.runtime import ModelLoadError, Predictor, graph, onnxfile

FLOAT = TensorProto.FLOAT
X = value("x", FLOAT, ["n", 3])
Y = value("y", FLOAT, ["n", 1])
REMEDY = "toolkit runs linear models only; re-export it with `toolkit export`."


@pytest.fixture
def no_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    def opened(*args, **kwargs):
        pytest.fail("onnxruntime was asked to open a model that should have been refused")

    monkeypatch.setattr(ort, "InferenceSession", opened)


def weights() -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(WEIGHT, "w"), numpy_helper.from_array(BIAS, "b")]


def gemm(out: str = "y", inp: str = "x") -> onnx.NodeProto:
    return helper.make_node("Gemm", [inp, "w", "b"], [out], transB=1)


def expected(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) @ WEIGHT.T.astype(np.float64) + BIAS


def refused(path: Path) -> str:
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    prefix = f"refused to load {str(path)!r}: "
    assert str(caught.value).startswith(prefix)
    return str(caught.value)[len(prefix) :]


def body(nodes: list, outputs: list[str]) -> onnx.GraphProto:
    return helper.make_graph(nodes, "body", [], [value(name, FLOAT, ["n", 1]) for name in outputs])


def test_a_loop_with_a_huge_trip_count_is_refused_before_onnxruntime(tmp_path, no_onnxruntime):
    loop_body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), gemm("v")],
        "body",
        [value("i", TensorProto.INT64, []), value("cond_in", TensorProto.BOOL, [])],
        [value("cond_out", TensorProto.BOOL, []), value("v", FLOAT, ["n", 1])],
    )
    path = graph_model(
        tmp_path / "loop.onnx",
        [
            helper.make_node("Loop", ["trips", ""], ["y"], body=loop_body),
        ],
        [X],
        [Y],
        [*weights(), numpy_helper.from_array(np.array(2**62, np.int64), "trips")],
    )
    message = refused(path)
    assert message.startswith(
        "it uses operator Loop, which a linear model does not need (allowed: Add, And, Cast, "
        "Concat, Constant, ConstantOfShape, Div, Flatten, Gather, Gemm, Identity, IsNaN, "
        "MatMul, Mul, ReduceL2, ReduceSum, Reshape, Shape, Sqrt, Squeeze, Sub, Unsqueeze, "
        "Where, "
        f"LabelEncoder (ai.onnx.ml), LinearRegressor (ai.onnx.ml)); {REMEDY}"
    )


@pytest.mark.parametrize("op", ["If", "Scan", "Relu", "Tile", "Expand"])
def test_other_operators_are_refused_and_named(tmp_path, op, no_onnxruntime):
    nodes = [gemm("g")]
    if op == "If":
        branch = body([helper.make_node("Identity", ["g"], ["z"])], ["z"])
        nodes.append(helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch))
    elif op == "Scan":
        scan = body([helper.make_node("Identity", ["g"], ["z"])], ["z"])
        nodes.append(helper.make_node("Scan", ["g"], ["y"], body=scan, num_scan_inputs=1))
    else:
        nodes.append(helper.make_node(op, ["g", "g"] if op == "Tile" else ["g"], ["y"]))
    path = graph_model(tmp_path / f"{op}.onnx", nodes, [X], [Y], weights())
    message = refused(path)
    assert re.match(rf"it uses operators? ({op}|Identity, {op}), which a linear model", message)


def test_an_operator_inside_a_subgraph_is_seen(tmp_path, no_onnxruntime):
    branch = body([helper.make_node("Relu", ["g"], ["z"])], ["z"])
    path = graph_model(
        tmp_path / "if.onnx",
        [gemm("g"), helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)],
        [X],
        [Y],
        weights(),
    )
    assert refused(path).startswith("it uses operators If, Relu, which a linear model")


def test_local_functions_are_refused_even_in_the_default_domain(tmp_path):
    model = local_function_model(["n", 2])
    model.functions[0].domain = ""
    model.graph.node[0].domain = ""
    del model.opset_import[1]
    info = onnxfile.parse(model.SerializeToString())
    with pytest.raises(onnxfile.UnsafeModelError, match=r"^it defines 1 local function; "):
        graph.check_linear(info)


def test_an_output_that_ignores_the_input_is_refused(tmp_path, no_onnxruntime):
    # It would answer any batch, NaN included, with the same single row.
    constant = numpy_helper.from_array(np.ones((1, 1), np.float32))
    path = graph_model(
        tmp_path / "constant.onnx",
        [helper.make_node("Constant", [], ["y"], value=constant)],
        [X],
        [Y],
    )
    assert refused(path) == f"its output 'y' does not depend on its input 'x'; {REMEDY}"


def test_an_output_computed_from_weights_alone_is_refused(tmp_path, no_onnxruntime):
    path = graph_model(
        tmp_path / "weights.onnx",
        [gemm("unused"), helper.make_node("Add", ["b", "b"], ["y"])],
        [X],
        [Y],
        weights(),
    )
    assert refused(path) == f"its output 'y' does not depend on its input 'x'; {REMEDY}"


def test_an_output_wired_to_the_input_is_refused(tmp_path, no_onnxruntime):
    # onnxruntime would leave the single-row path's bound output buffer untouched.
    path = graph_model(tmp_path / "wired.onnx", [], [X], [value("x", FLOAT, ["n", 3])])
    assert refused(path) == f"its output 'x' is its input, passed through by no operator; {REMEDY}"


def test_toolkits_exports_pass_the_rule(seed_onnx):
    info = onnxfile.parse(seed_onnx.read_bytes())
    assert {node.op_type for node in info.nodes} == {"Gemm"}
    graph.check_linear(info)


# --- Accepted: the linear graphs other exporters write ---------------------------------


def save(tmp_path: Path, name: str, nodes, initializers, inp=X, opsets=(("", 18),)) -> Path:
    return graph_model(tmp_path / name, nodes, [inp], [Y], initializers, opsets)


def test_matmul_plus_add_with_a_cast_and_reshape_in_front(tmp_path):
    path = save(
        tmp_path,
        "matmul.onnx",
        [
            helper.make_node("Cast", ["x"], ["xf"], to=FLOAT),
            helper.make_node("Reshape", ["xf", "shape"], ["xr"]),
            helper.make_node("MatMul", ["xr", "wt"], ["m"]),
            helper.make_node("Add", ["m", "b"], ["y"]),
        ],
        [
            numpy_helper.from_array(np.ascontiguousarray(WEIGHT.T), "wt"),
            numpy_helper.from_array(BIAS, "b"),
            numpy_helper.from_array(np.array([-1, 3], np.int64), "shape"),
        ],
    )
    x = np.random.default_rng(0).uniform(-10, 10, (7, 3)).astype(np.float32)
    predictor = Predictor(path)
    np.testing.assert_allclose(predictor.predict(x), expected(x), rtol=0, atol=1e-4)
    np.testing.assert_allclose(predictor.predict(x[0]), expected(x[:1]), rtol=0, atol=1e-4)


def test_a_scaler_in_front_of_a_gemm(tmp_path):
    # (x - mean) / scale, then the Gemm: still linear in x.
    mean, scale = np.array([1, 2, 3], np.float32), np.array([2, 4, 8], np.float32)
    path = save(
        tmp_path,
        "scaled.onnx",
        [
            helper.make_node("Sub", ["x", "mean"], ["c"]),
            helper.make_node("Div", ["c", "scale"], ["s"]),
            gemm("y", "s"),
        ],
        [
            *weights(),
            numpy_helper.from_array(mean, "mean"),
            numpy_helper.from_array(scale, "scale"),
        ],
    )
    x = np.array([[1.0, 2.0, 3.0], [3.0, 6.0, 11.0]], np.float32)
    np.testing.assert_array_equal(Predictor(path).predict(x), expected((x - mean) / scale))


def test_ai_onnx_ml_linear_regressor(tmp_path):
    node = helper.make_node(
        "LinearRegressor",
        ["x"],
        ["y"],
        domain="ai.onnx.ml",
        coefficients=[1.0, 1.0],
        intercepts=[-1.0],
    )
    path = save(
        tmp_path,
        "sklearn.onnx",
        [node],
        [],
        inp=value("x", FLOAT, ["n", 2]),
        opsets=(("", 18), ("ai.onnx.ml", 1)),
    )
    x = inputs_in_range(9)
    np.testing.assert_allclose(Predictor(path).predict(x), seed_math(x), rtol=0, atol=SEED_ATOL)


def test_allowed_treats_ai_onnx_as_the_default_domain():
    assert graph.allowed("ai.onnx", "Gemm") and graph.allowed("", "Gemm")
    assert not graph.allowed("ai.onnx.ml", "Gemm")
    assert not graph.allowed("", "LinearRegressor")
    assert not graph.allowed("", "Loop")
