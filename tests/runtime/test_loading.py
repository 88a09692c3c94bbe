"""toolkit/runtime/predictor.py and onnxfile.py: loading a model.

Missing, unreadable, unsafe and unsupported models are refused with the path named.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import local_function_model
from onnx import TensorProto, helper, numpy_helper
from runtime_models import BIAS, WEIGHT, graph_model, linear_proto, value

from toolkit.runtime import ModelLoadError, Predictor


@pytest.fixture(scope="module")
def seed_model(seed_onnx: Path) -> Path:
    return seed_onnx


# --- Loading --------------------------------------------------------------------------


@pytest.fixture
def no_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if onnxruntime is asked to open anything."""

    def opened(*args, **kwargs):
        pytest.fail("onnxruntime was asked to open a model that should have been refused")

    monkeypatch.setattr(ort, "InferenceSession", opened)


def external_model(folder: Path, location: str = "weights.bin") -> Path:
    """The WEIGHT/BIAS model with both initializers in one external file at `location`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(
        linear_proto(WEIGHT, BIAS),
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=location,
        size_threshold=0,
    )
    return path


def point_external_data_at(path: Path, location: str) -> None:
    """Rewrite every initializer's external `location` (the data itself is not moved)."""
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        assert tensor.data_location == TensorProto.EXTERNAL
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path.write_bytes(model.SerializeToString())


def expected_linear(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) @ WEIGHT.T.astype(np.float64) + BIAS


def test_external_data_inside_the_folder_loads_and_predicts(tmp_path):
    for case, location in enumerate(["weights.bin", os.path.join("data", "weights.bin")]):
        folder = tmp_path / f"case{case}"
        if os.sep in location:
            (folder / "data").mkdir(parents=True)
        path = external_model(folder, location)
        assert (folder / location).is_file()
        predictor = Predictor(path)
        x = np.array([[1.0, 2.0, 4.0], [0.5, -1.0, 0.0]], dtype=np.float32)
        # Small exact binary fractions: float32 computes these without rounding.
        np.testing.assert_array_equal(predictor.predict(x), expected_linear(x))
        assert (predictor.feature_names, predictor.target_names) == (["x0", "x1", "x2"], ["y0"])


def test_external_data_through_a_symlink_inside_the_folder_loads(tmp_path):
    path = external_model(tmp_path / "m", "real.bin")
    (tmp_path / "m" / "link.bin").symlink_to("real.bin")
    point_external_data_at(path, "link.bin")
    np.testing.assert_array_equal(Predictor(path).predict([[1.0, 1.0, 2.0]]), [[6.0]])


def refused_message(path: Path, location: str, folder: Path) -> str:
    folder = folder.resolve()
    return (
        f"refused to load {str(path)!r}: its weights point at external data {location!r}, "
        f"outside the model's folder {str(folder)!r}; toolkit only reads external data that "
        "lies next to the model."
    )


def test_external_data_in_the_parent_folder_is_refused_before_onnxruntime(tmp_path, no_onnxruntime):
    path = external_model(tmp_path / "models")
    # A valid weights file where the pointer leads: onnxruntime would read it.
    (tmp_path / "models" / "weights.bin").rename(tmp_path / "secret.bin")
    point_external_data_at(path, "../secret.bin")
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value) == refused_message(path, "../secret.bin", tmp_path / "models")


def test_external_data_at_an_absolute_path_is_refused_before_onnxruntime(tmp_path, no_onnxruntime):
    path = external_model(tmp_path / "models")
    secret = tmp_path / "elsewhere" / "secret.bin"
    secret.parent.mkdir()
    (tmp_path / "models" / "weights.bin").rename(secret)
    point_external_data_at(path, str(secret))
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value) == refused_message(path, str(secret), tmp_path / "models")


def test_external_data_through_a_symlink_leading_outside_is_refused_before_onnxruntime(
    tmp_path, no_onnxruntime
):
    path = external_model(tmp_path / "models")
    secret = tmp_path / "secret.bin"
    (tmp_path / "models" / "weights.bin").rename(secret)
    (tmp_path / "models" / "weights.bin").symlink_to(secret)
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value) == refused_message(path, "weights.bin", tmp_path / "models")


def test_symlinked_model_is_checked_where_onnxruntime_reads_its_data(tmp_path, no_onnxruntime):
    # onnxruntime resolves `location` next to the path it is given. Here that path is a link
    # in `shared/` whose neighbour weights.bin leads outside, while the real model's own
    # folder holds a harmless weights.bin.
    real = external_model(tmp_path / "real")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "model.onnx").symlink_to(real)
    secret = external_model(tmp_path / "private").parent / "weights.bin"
    (shared / "weights.bin").symlink_to(secret)
    with pytest.raises(ModelLoadError) as caught:
        Predictor(shared / "model.onnx")
    assert str(caught.value) == refused_message(shared / "model.onnx", "weights.bin", shared)


def test_external_data_without_a_location_is_refused(tmp_path, no_onnxruntime):
    path = external_model(tmp_path / "m")
    point_external_data_at(path, "")
    with pytest.raises(ModelLoadError, match="external data '', outside the model's folder"):
        Predictor(path)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value) == f"model {str(path)!r} does not exist."


def test_a_folder_is_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError) as caught:
        Predictor(tmp_path)
    assert str(caught.value) == f"model {str(tmp_path)!r} is not a file."


def test_empty_file_names_the_path(tmp_path, no_onnxruntime):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value) == (
        f"model {str(path)!r} is empty (0 bytes); re-export it or copy the file again."
    )


def test_truncated_model_names_the_path(tmp_path, seed_model, no_onnxruntime):
    data = seed_model.read_bytes()
    path = tmp_path / "half.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value).startswith(
        f"{str(path)!r} is not a readable ONNX model (empty, truncated or another format): "
    )


def test_csv_file_is_not_a_model(tmp_path, write_csv, no_onnxruntime):
    path = write_csv("data.csv", "x1,x2,y\n1,2,2\n3,4,6\n")
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value).startswith(
        f"{str(path)!r} is not a readable ONNX model (empty, truncated or another format): "
    )


def test_protobuf_that_onnxruntime_rejects_is_a_model_load_error(tmp_path):
    # Passes toolkit's checks, but the Gemm's weight "w" is defined nowhere.
    path = graph_model(
        tmp_path / "broken.onnx",
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)],
        [value("x", TensorProto.FLOAT, ["n", 2])],
        [value("y", TensorProto.FLOAT, ["n", 1])],
    )
    with pytest.raises(
        ModelLoadError, match=f"^onnxruntime cannot load {re.escape(repr(str(path)))}: "
    ):
        Predictor(path)


@pytest.mark.parametrize("domain", ["com.microsoft", "custom.ops"])
def test_operators_from_a_non_standard_domain_are_refused_before_onnxruntime(
    tmp_path, domain, no_onnxruntime
):
    path = graph_model(
        tmp_path / "custom.onnx",
        [helper.make_node("Gelu", ["x"], ["y"], domain=domain)],
        [value("x", TensorProto.FLOAT, ["n", 2])],
        [value("y", TensorProto.FLOAT, ["n", 2])],
        opsets=[("", 18), (domain, 1)],
    )
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value) == (
        f"refused to load {str(path)!r}: it uses operators from non-standard domain "
        f"{domain!r}; toolkit runs only the standard ONNX operator sets ('ai.onnx', "
        "'ai.onnx.ml')."
    )


def test_custom_operator_hidden_in_a_subgraph_is_refused(tmp_path, no_onnxruntime):
    branch = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["z"], domain="custom.ops")],
        "branch",
        [],
        [value("z", TensorProto.FLOAT, ["n", 2])],
    )
    path = graph_model(
        tmp_path / "if.onnx",
        [
            helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", 9, [], [1])),
            helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch),
        ],
        [value("x", TensorProto.FLOAT, ["n", 2])],
        [value("y", TensorProto.FLOAT, ["n", 2])],
    )
    with pytest.raises(ModelLoadError, match=re.escape("non-standard domain 'custom.ops'")):
        Predictor(path)


def test_model_local_function_is_refused_cleanly(tmp_path, no_onnxruntime):
    # Used to crash with AttributeError: FunctionProto has no initializers.
    model = local_function_model(["n", 2])
    model.ir_version = 10
    path = tmp_path / "function.onnx"
    onnx.save_model(model, path)
    with pytest.raises(ModelLoadError, match=re.escape("non-standard domain 'local'")):
        Predictor(path)


def test_two_inputs_are_an_unsupported_signature(tmp_path):
    path = graph_model(
        tmp_path / "two.onnx",
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [value("a", TensorProto.FLOAT, ["n", 2]), value("b", TensorProto.FLOAT, ["n", 2])],
        [value("y", TensorProto.FLOAT, ["n", 2])],
    )
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value) == (
        f"{str(path)!r} has inputs (a: tensor(float)['n', 2], b: tensor(float)['n', 2]) and "
        "outputs (y: tensor(float)['n', 2]); expected one 2-D float input and one 2-D output."
    )


SIGNATURE_HINT = (
    "expected one 2-D float input [batch, n_features] and one 2-D output [batch, n_targets] "
    "of the same type."
)


@pytest.mark.parametrize(
    ("node", "inp", "out", "shown"),
    [
        (
            helper.make_node("Identity", ["x"], ["y"]),
            value("x", TensorProto.FLOAT, ["n", 2, 3]),
            value("y", TensorProto.FLOAT, ["n", 2, 3]),
            "input x: tensor(float)['n', 2, 3] and output y: tensor(float)['n', 2, 3]",
        ),
        (
            helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT),
            value("x", TensorProto.INT64, ["n", 2]),
            value("y", TensorProto.FLOAT, ["n", 2]),
            "input x: tensor(int64)['n', 2] and output y: tensor(float)['n', 2]",
        ),
        (
            helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE),
            value("x", TensorProto.FLOAT, ["n", 2]),
            value("y", TensorProto.DOUBLE, ["n", 2]),
            "input x: tensor(float)['n', 2] and output y: tensor(double)['n', 2]",
        ),
        (
            helper.make_node("Identity", ["x"], ["y"]),
            value("x", TensorProto.FLOAT, ["n", "m"]),
            value("y", TensorProto.FLOAT, ["n", "m"]),
            "input x: tensor(float)['n', 'm'] and output y: tensor(float)['n', 'm']",
        ),
    ],
    ids=["3-D input", "int input", "float in double out", "unknown width"],
)
def test_unsupported_signatures_say_what_was_found_and_expected(tmp_path, node, inp, out, shown):
    path = graph_model(tmp_path / "sig.onnx", [node], [inp], [out])
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value) == f"{str(path)!r} has {shown}; {SIGNATURE_HINT}"


def test_one_d_output_is_an_unsupported_signature(tmp_path):
    path = graph_model(
        tmp_path / "flat.onnx",
        [
            helper.make_node("Gemm", ["x", "w"], ["g"], transB=1),
            helper.make_node("Squeeze", ["g", "axes"], ["y"]),
        ],
        [value("x", TensorProto.FLOAT, ["n", 2])],
        [value("y", TensorProto.FLOAT, ["n"])],
        [
            numpy_helper.from_array(np.ones((1, 2), np.float32), "w"),
            numpy_helper.from_array(np.array([1]), "axes"),
        ],
    )
    with pytest.raises(ModelLoadError, match=re.escape("output y: tensor(float)['n']; expected")):
        Predictor(path)


def test_onnxruntimes_fallback_chatter_stays_off_stdout(tmp_path, monkeypatch, capsys):
    # onnxruntime's wrapper prints "EP Error ..." to stdout when a session fails, then
    # retries; `toolkit predict` writes its predictions there.
    def failing(*args, **kwargs):
        print("*************** EP Error ***************")
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : broken\nsecond line")

    monkeypatch.setattr(ort, "InferenceSession", failing)
    path = tmp_path / "model.onnx"
    onnx.save_model(linear_proto(WEIGHT, BIAS), path)
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert capsys.readouterr().out == ""
    assert str(caught.value) == (
        f"onnxruntime cannot load {str(path)!r}: [ONNXRuntimeError] : 1 : FAIL : broken second line"
    )
