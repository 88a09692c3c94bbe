"""toolkit/runtime/info.py and weights.py: `toolkit info`'s facts (describe), equations
read from the file, and their text (to_lines)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from runtime_models import BIAS, WEIGHT, graph_model, linear_proto, value, write_linear

from toolkit import card
from toolkit.runtime import Predictor
from toolkit.runtime.info import NO_EQUATION, card_lines, describe, to_lines


@pytest.fixture(scope="module")
def details(seed_onnx: Path) -> dict:
    return describe(Predictor(seed_onnx, providers="cpu"))


def test_describe_gives_signature_names_opsets_size_and_providers(seed_onnx, details):
    assert details["path"] == str(seed_onnx)
    assert details["size_bytes"] == seed_onnx.stat().st_size
    assert details["input"] == {"name": "features", "type": "tensor(float)", "shape": ["batch", 2]}
    assert details["output"] == {
        "name": "prediction",
        "type": "tensor(float)",
        "shape": ["batch", 1],
    }
    assert (details["feature_names"], details["target_names"]) == (["x1", "x2"], ["y"])
    assert details["dtype"] == "float32"
    assert details["opsets"] == {"": 18}
    assert details["ir_version"] == onnx.load(seed_onnx).ir_version
    assert details["provider"] == "CPUExecutionProvider"
    assert "CPUExecutionProvider" in details["available_providers"]
    assert details["metadata"] == {p.key: p.value for p in onnx.load(seed_onnx).metadata_props}


def test_to_lines_words_each_fact_with_aligned_labels(seed_onnx, details):
    lines = to_lines(details)
    assert lines[:7] == [
        f"model:      {seed_onnx} ({seed_onnx.stat().st_size:,} bytes)",
        "input:      features tensor(float) ['batch', 2]",
        "output:     prediction tensor(float) ['batch', 1]",
        "features:   x1, x2",
        "targets:    y",
        "opset:      ai.onnx 18",
        "providers:  using CPUExecutionProvider; available "
        + ", ".join(details["available_providers"]),
    ]
    assert lines[7:9] == ["equation:   y = 1.0000*x1 + 1.0000*x2 - 1.0000", "model card:"]


def test_the_card_is_shown_in_the_order_export_writes_it(details):
    lines = card_lines(details["metadata"])
    shown = [line.split()[0] for line in lines[1:]]
    assert shown == [key for key in card.KEYS if key in details["metadata"]]
    width = max(len(key) for key in details["metadata"])
    assert lines[1] == f"  {card.CARD_VERSION:<{width}}  {card.VERSION}"


def test_foreign_keys_follow_the_known_ones_sorted():
    lines = card_lines({"zeta": "1", "dtype": "float32", "alpha": "2"})
    assert lines == ["model card:", "  dtype  float32", "  alpha  2", "  zeta   1"]


def test_a_model_without_a_card_says_so(tmp_path):
    details = describe(Predictor(write_linear(tmp_path / "plain.onnx")))
    assert details["metadata"] == {}
    assert to_lines(details)[-1] == "model card: none (names default to x0..xn)"


# --- The equation, read from the weights stored in the file ----------------------------


def gemm_model(path: Path, weight: np.ndarray, bias: np.ndarray | None, **attributes) -> Path:
    names = ["x", "w"] + ([] if bias is None else ["b"])
    initializers = [numpy_helper.from_array(weight, "w")]
    if bias is not None:
        initializers.append(numpy_helper.from_array(bias, "b"))
    n_targets = weight.shape[0] if attributes.get("transB") else weight.shape[1]
    n_features = weight.shape[1] if attributes.get("transB") else weight.shape[0]
    return graph_model(
        path,
        [helper.make_node("Gemm", names, ["y"], **attributes)],
        [value("x", TensorProto.FLOAT, ["n", n_features])],
        [value("y", TensorProto.FLOAT, ["n", n_targets])],
        initializers,
    )


def shown(path: Path) -> dict:
    return describe(Predictor(path))


def test_the_seed_models_equation_and_weights(details):
    assert details["equations"] == ["y = 1.0000*x1 + 1.0000*x2 - 1.0000"]
    np.testing.assert_allclose(details["weight"], [[1.0, 1.0]], rtol=0, atol=1e-6)
    np.testing.assert_allclose(details["bias"], [-1.0], rtol=0, atol=1e-6)


def test_two_targets_without_a_bias_one_line_each(tmp_path):
    weight = np.array([[2.0, 3.0], [1.0, -1.0]], np.float32)
    details = shown(gemm_model(tmp_path / "m.onnx", weight, None, transB=1))
    assert details["equations"] == ["y0 = 2.0000*x0 + 3.0000*x1", "y1 = 1.0000*x0 - 1.0000*x1"]
    assert details["bias"] is None
    assert to_lines(details)[7:9] == [
        "equation:   y0 = 2.0000*x0 + 3.0000*x1",
        "            y1 = 1.0000*x0 - 1.0000*x1",
    ]


def test_alpha_beta_and_an_untransposed_weight(tmp_path):
    # y = 2 * x B + 0.5 * C with B (2 features x 1 target).
    weight = np.array([[1.5], [-0.25]], np.float32)
    path = gemm_model(tmp_path / "m.onnx", weight, np.array([4.0], np.float32), alpha=2.0, beta=0.5)
    details = shown(path)
    assert details["equations"] == ["y0 = 3.0000*x0 - 0.5000*x1 + 2.0000"]
    x = np.array([[1.0, 2.0]], np.float32)
    assert Predictor(path).predict(x)[0, 0] == 3.0 * 1 - 0.5 * 2 + 2.0


def test_weights_are_read_exactly_not_through_a_float32_run(tmp_path):
    # Through float32 predictions, prediction(e_1) - prediction(0) near a bias of 1e6
    # would keep only ulp(1e6) = 0.0625 of the small weight: read from the file, it is exact.
    weight = np.array([[1.2345e-3, -2.5]], np.float32)
    details = shown(gemm_model(tmp_path / "m.onnx", weight, np.array([1e6], np.float32), transB=1))
    assert details["weight"] == [[float(np.float32(1.2345e-3)), -2.5]]
    assert details["equations"] == ["y0 = 0.0012*x0 - 2.5000*x1 + 1000000.0000"]


def test_matmul_plus_add_is_read_too(tmp_path):
    path = graph_model(
        tmp_path / "m.onnx",
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["b", "m"], ["y"])],
        [value("x", TensorProto.FLOAT, ["n", 2])],
        [value("y", TensorProto.FLOAT, ["n", 1])],
        [
            numpy_helper.from_array(np.array([[1.0], [1.0]], np.float32), "w"),
            numpy_helper.from_array(np.array([[-1.0]], np.float32), "b"),
        ],
    )
    assert shown(path)["equations"] == ["y0 = 1.0000*x0 + 1.0000*x1 - 1.0000"]


def test_other_graphs_say_the_equation_is_not_shown(tmp_path):
    # A Cast in front: still a linear model, but not one weights.py reads; no guessing.
    path = graph_model(
        tmp_path / "cast.onnx",
        [
            helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT),
            helper.make_node("Gemm", ["c", "w"], ["y"], transB=1),
        ],
        [value("x", TensorProto.FLOAT, ["n", 2])],
        [value("y", TensorProto.FLOAT, ["n", 1])],
        [numpy_helper.from_array(np.ones((1, 2), np.float32), "w")],
    )
    details = shown(path)
    assert (details["equations"], details["weight"], details["bias"]) == (None, None, None)
    assert to_lines(details)[7] == f"equation:   {NO_EQUATION}"


def test_weights_in_external_data_are_not_read(tmp_path):
    path = tmp_path / "external.onnx"
    onnx.save_model(
        linear_proto(WEIGHT, BIAS),
        path,
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert shown(path)["equations"] is None


def test_the_cards_inference_is_shown_as_a_table(details):
    """The seed model is fitted exactly: std err 0, t infinite (null in the card)."""
    assert details["inference"]["n"] == 4
    assert [row["term"] for row in details["inference"]["targets"][0]["coefficients"]] == [
        "(intercept)",
        "x1",
        "x2",
    ]
    lines = to_lines(details)
    start = lines.index("inference:")
    assert lines[start + 1] == "  y: least squares on 4 rows"
    assert lines[start + 2].split() == ["term", "coef", "std", "err", "t", "P>|t|"]
    assert lines[start + 3].split() == ["(intercept)", "-1.000", "0", "-inf", "0"]
    assert lines[start + 6].startswith("  R^2 1.000, adj. R^2 1.000, F n/a")
    (shown,) = [
        line for line in card_lines(details["metadata"], table_below=True) if "inference" in line
    ]
    assert shown.split()[1:3] == ["(JSON,", f"{len(details['metadata'][card.INFERENCE]):,}"]


def test_a_foreign_inference_value_does_not_break_info():
    assert card_lines({card.INFERENCE: "[1, 2"}) == ["model card:", "  inference  [1, 2"]
    from toolkit.runtime.info import _inference

    assert _inference({card.INFERENCE: '{"targets": 3}'}) is None
    assert _inference({card.INFERENCE: "not json"}) is None
