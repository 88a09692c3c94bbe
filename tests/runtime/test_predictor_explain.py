"""Predictor.explain (toolkit/runtime/explain.py) on models exported with --explain.

Explain's numbers are checked against statsmodels in tests/export/test_explain.py; here:
the same input guard as predict, one row vs a batch, threads, the pruned prediction
session, the typed result and its column names, and the refusals.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from explain_models import exported, make_data, trained
from onnx import TensorProto, helper

from toolkit.errors import InputError, ModelLoadError, ModelRunError, PredictorError
from toolkit.runtime import Predictor
from toolkit.runtime import explain as runtime_explain


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_data(rows=50, features=2, targets=2, seed=7)


@pytest.fixture(scope="module")
def model(tmp_path_factory, data) -> Path:
    x, y = data
    return exported(trained(tmp_path_factory.mktemp("explain"), x, y))


@pytest.fixture(scope="module")
def predictor(model) -> Predictor:
    return Predictor(model)


def test_predict_runs_the_graph_pruned_to_the_prediction(predictor, model, data):
    x, _ = data
    assert [o.name for o in predictor.session.get_outputs()] == ["prediction"]
    assert predictor.explain_outputs == ("contributions", "stderr", "lower", "upper")
    # The same Gemm, the same weights: the same bits as the whole graph's prediction.
    np.testing.assert_array_equal(predictor.predict(x), predictor.explain(x).prediction)
    full = onnx.load(model)
    pruned = onnx.load_from_string(runtime_explain.prediction_only(full.SerializeToString()))
    assert [n.op_type for n in pruned.graph.node] == ["Gemm"]
    assert sorted(i.name for i in pruned.graph.initializer) == ["bias", "weight"]
    assert pruned.metadata_props == full.metadata_props


def test_one_row_a_batch_and_columns_agree(predictor, data):
    x, _ = data
    batch = predictor.explain(x[:5])
    for i in range(5):
        one = predictor.explain(x[i])  # a 1-D row: the single-row path
        for name in ("prediction", "contributions", "stderr", "lower", "upper"):
            np.testing.assert_array_equal(getattr(one, name)[0], getattr(batch, name)[i])
    by_name = predictor.explain({"x2": x[:5, 1], "x1": x[:5, 0]})
    np.testing.assert_array_equal(by_name.upper, batch.upper)


def test_the_result_is_typed_and_its_columns_are_named(predictor, data):
    x, _ = data
    found = predictor.explain(x[:3])
    assert found.prediction.shape == found.stderr.shape == (3, 2)
    assert found.contributions.shape == (3, 2, 2)
    assert found.level == 0.95
    assert found.target_names == ["y1", "y2"] and found.feature_names == ["x1", "x2"]
    columns = found.columns()
    assert list(columns) == [
        "y1", "y1_lower", "y1_upper", "y1_stderr", "y1:x1", "y1:x2",
        "y2", "y2_lower", "y2_upper", "y2_stderr", "y2:x1", "y2:x2",
    ]  # fmt: skip
    np.testing.assert_array_equal(columns["y2_upper"], found.upper[:, 1])
    np.testing.assert_array_equal(columns["y2:x1"], found.contributions[:, 1, 0])
    assert runtime_explain.column_names(predictor) == list(columns)


def test_an_empty_batch_gives_empty_outputs(predictor):
    found = predictor.explain(np.empty((0, 2)))
    assert found.prediction.shape == (0, 2) and found.contributions.shape == (0, 2, 2)
    assert found.lower.shape == (0, 2)


@pytest.mark.parametrize(
    "bad",
    [[1.0, 2.0, 3.0], [[1.0, float("nan")]], [[True, 1.0]], [["a", 1.0]], np.ones((2, 2, 2))],
)
def test_the_input_guard_is_predicts(predictor, bad):
    with pytest.raises(InputError) as from_predict:
        predictor.predict(bad)
    with pytest.raises(InputError, match=re.escape(str(from_predict.value))):
        predictor.explain(bad)


def test_a_non_finite_input_in_a_batch_names_its_row(predictor):
    rows = np.ones((4, 2))
    rows[2, 1] = np.inf
    with pytest.raises(InputError, match=r"^row 3, column 'x2': expected a finite number"):
        predictor.explain(rows)


def test_a_model_without_explain_outputs_says_how_to_get_them(seed_onnx):
    plain = Predictor(seed_onnx)
    assert plain.explain_outputs == ()
    with pytest.raises(PredictorError, match=r"export it with `toolkit export --explain`"):
        plain.explain([1.0, 2.0])


def test_concurrent_explain_calls_agree_with_sequential_ones(predictor, data):
    x, _ = data
    expected = [predictor.explain(row).upper for row in x]
    found: dict[int, list[np.ndarray]] = {}

    def work(k: int) -> None:
        found[k] = [predictor.explain(row).upper for row in x]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for results in found.values():
        for got, want in zip(results, expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_explain_outputs_of_the_wrong_shape_are_refused(model, tmp_path):
    # onnxruntime reports the shape it infers where the file declares another, so the
    # graph itself must compute a wrong one: `stderr` becomes the (batch, 4) input of its
    # norm (the interval's nodes read the norm under another name).
    broken = onnx.load(model)
    for node in broken.graph.node:
        node.input[:] = ["norm" if name == "stderr" else name for name in node.input]
        if list(node.output) == ["stderr"]:
            node.output[:] = ["norm"]
            norm_input = node.input[0]
    broken.graph.node.append(helper.make_node("Identity", [norm_input], ["stderr"]))
    stderr = next(o for o in broken.graph.output if o.name == "stderr")
    stderr.type.tensor_type.shape.dim[1].dim_value = 4
    path = tmp_path / "broken.onnx"
    onnx.save(broken, path)
    with pytest.raises(ModelLoadError, match=r"explain output 'stderr' of type tensor\(double\)"):
        Predictor(path)


@pytest.mark.parametrize("rows", [1, 3])  # the one-row path checks shapes its own way
@pytest.mark.parametrize("output", ["contributions", "upper"])  # the first and last checked
def test_explain_outputs_with_other_rows_than_the_input_are_refused(
    model, data, tmp_path, rows, output
):
    # The file declares ['batch', targets(, features)]; the graph stacks `output` twice,
    # so every run returns twice the rows it was given there.
    broken = onnx.load(model)
    for node in broken.graph.node:
        node.output[:] = ["twice" if name == output else name for name in node.output]
    broken.graph.node.append(helper.make_node("Concat", ["twice", "twice"], [output], axis=0))
    path = tmp_path / "doubled.onnx"
    onnx.save(broken, path)
    predictor = Predictor(path)  # the declared signature is right
    trailing = ", 2, 2" if output == "contributions" else ", 2"
    message = (
        f"returned {output!r} of shape ({2 * rows}{trailing}) for {rows} input rows; "
        f"expected ({rows}{trailing}). The model file is broken: re-export it."
    )
    with pytest.raises(ModelRunError, match=re.escape(message)):
        predictor.explain(data[0][:rows])


def test_other_extra_outputs_are_still_an_unsupported_signature(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Identity", ["x"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 2]),
        ],
    )
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    with pytest.raises(ModelLoadError, match=r"expected one 2-D float input and one 2-D output"):
        Predictor(path)


def test_info_lists_the_explain_outputs(predictor, seed_onnx):
    from toolkit.runtime.info import describe, to_lines

    details = describe(predictor)
    assert details["output"]["name"] == "prediction"
    assert [o["name"] for o in details["explain_outputs"]] == list(predictor.explain_outputs)
    assert details["explain_outputs"][0]["shape"] == ["batch", 2, 2]
    (line,) = [line for line in to_lines(details) if line.startswith("explain:")]
    assert line.endswith("; 0.95 prediction interval, t = 2.01174 on 47 df")  # t_.975,47
    assert describe(Predictor(seed_onnx))["explain_outputs"] == []
