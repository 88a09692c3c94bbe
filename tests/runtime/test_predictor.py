"""toolkit/runtime/predictor.py: the torch-free Predictor.

Import weight, session options, outputs, the model card's names, threads, and where
finiteness is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from runtime_models import (
    BIAS,
    SEED_ATOL,
    WEIGHT,
    graph_model,
    inputs_in_range,
    linear_proto,
    seed_math,
    value,
    write_linear,
)

from toolkit.export import export_model
from toolkit.runtime import InputError, ModelLoadError, ModelRunError, Predictor
from toolkit.training import TrainConfig, train


@pytest.fixture(scope="module")
def seed_model(seed_onnx: Path) -> Path:
    return seed_onnx


@pytest.fixture(scope="module")
def two_target_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Features a, b; targets u = 2a + 3b and v = a - b (fitted exactly, no intercept)."""
    folder = tmp_path_factory.mktemp("two_targets")
    data = folder / "mt.csv"
    data.write_text("a,b,u,v\n1,0,2,1\n0,1,3,-1\n1,1,5,0\n2,1,7,1\n1,3,11,-2\n")
    train(TrainConfig(data=data, targets=("u", "v"), intercept=False, out=folder / "m.pt"))
    export_model(folder / "m.pt", folder / "m.onnx")
    return folder / "m.onnx"


@pytest.fixture(scope="module")
def seed(seed_model) -> Predictor:
    return Predictor(seed_model)


# --- Light: the runtime imports nothing heavy -----------------------------------------


def test_import_and_predict_load_no_torch_onnx_onnxscript_click_pyarrow_or_pandas(seed_model):
    # The model file is built here (with torch and onnx); the child process only runs it.
    script = textwrap.dedent(
        f"""
        import json, sys
        HEAVY = {{"torch", "onnx", "onnxscript", "click", "pyarrow", "pandas"}}
        def heavy():
            return sorted({{name.split(".")[0] for name in sys.modules}} & HEAVY)
        from toolkit.runtime import Predictor
        after_import = heavy()
        predictor = Predictor({str(seed_model)!r})
        batch = predictor.predict([[1.0, 2.0], [3.0, 4.0]]).tolist()
        row = predictor.predict([1.0, 2.0]).tolist()
        named = predictor.predict({{"x1": [1.0], "x2": [2.0]}}, by_name=True)["y"].tolist()
        print(json.dumps({{"after_import": after_import, "after_predict": heavy(),
                           "batch": batch, "row": row, "named": named}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["after_import"] == []
    assert report["after_predict"] == []
    np.testing.assert_allclose(report["batch"], [[2.0], [6.0]], rtol=0, atol=SEED_ATOL)
    np.testing.assert_allclose(report["row"], [[2.0]], rtol=0, atol=SEED_ATOL)
    np.testing.assert_allclose(report["named"], [2.0], rtol=0, atol=SEED_ATOL)


# --- Session options ---------------------------------------------------------------


def test_thread_counts_reach_the_session_options(seed_model):
    predictor = Predictor(seed_model, intra_op_threads=1, inter_op_threads=2)
    options = predictor._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 2)
    x = inputs_in_range(50)
    np.testing.assert_allclose(predictor.predict(x), seed_math(x), rtol=0, atol=SEED_ATOL)


def test_thread_counts_default_to_onnxruntimes_own(seed_model):
    options = Predictor(seed_model)._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (0, 0)


# --- Outputs ------------------------------------------------------------------------


def test_empty_batch_returns_zero_rows_of_n_targets(seed, two_target_model):
    result = seed.predict(np.empty((0, 2), dtype=np.float32))
    assert result.shape == (0, 1) and result.dtype == np.float32
    assert seed.predict({"x1": [], "x2": []}).shape == (0, 1)
    assert Predictor(two_target_model).predict(np.empty((0, 2))).shape == (0, 2)
    named = seed.predict(np.empty((0, 2)), by_name=True)
    assert list(named) == ["y"] and named["y"].shape == (0,)


@pytest.mark.parametrize("empty", [[], (), np.array([]), np.empty(0, np.float32)])
def test_an_empty_list_is_zero_rows_as_an_empty_array_is(seed, two_target_model, empty):
    result = seed.predict(empty)
    assert result.shape == (0, 1) and result.dtype == np.float32
    assert Predictor(two_target_model).predict(empty).shape == (0, 2)
    assert seed.prepare(empty).shape == (0, 2)
    with pytest.raises(InputError, match=r"expected 2 features per row \(x1, x2\), got 0"):
        seed.predict([[]])  # one row without features is not an empty batch


def test_two_targets_shape_names_and_math(two_target_model):
    predictor = Predictor(two_target_model)
    assert (predictor.feature_names, predictor.target_names) == (["a", "b"], ["u", "v"])
    x = inputs_in_range(6)
    result = predictor.predict(x)
    assert result.shape == (6, 2)
    expected = np.column_stack([2 * x[:, 0] + 3 * x[:, 1], x[:, 0] - x[:, 1]])
    # u = 2a + 3b with |a|, |b| <= 10: |u| < 50, float32 ulp(32) ~ 3.8e-6; 2e-5 bounds it.
    np.testing.assert_allclose(result, expected, rtol=0, atol=2e-5)
    single = predictor.predict(x[0])
    assert single.shape == (1, 2)
    np.testing.assert_allclose(single, expected[:1], rtol=0, atol=2e-5)


def test_by_name_returns_one_column_per_target(two_target_model):
    predictor = Predictor(two_target_model)
    x = inputs_in_range(4)
    named = predictor.predict(x, by_name=True)
    assert list(named) == ["u", "v"]
    full = predictor.predict(x)
    for t, name in enumerate(["u", "v"]):
        assert named[name].shape == (4,)
        np.testing.assert_array_equal(named[name], full[:, t])
    row = predictor.predict({"a": 1.0, "b": 1.0}, by_name=True)
    np.testing.assert_allclose([row["u"][0], row["v"][0]], [5.0, 0.0], rtol=0, atol=2e-5)


def test_single_row_results_are_not_overwritten_by_the_next_call(seed):
    first = seed.predict([1.0, 2.0])
    second = seed.predict([10.0, 10.0])
    np.testing.assert_allclose(first, [[2.0]], rtol=0, atol=SEED_ATOL)
    np.testing.assert_allclose(second, [[19.0]], rtol=0, atol=SEED_ATOL)


def test_prepare_returns_a_native_contiguous_array_in_the_models_dtype(seed):
    prepared = seed.prepare([[1, 2], [3, 4]])
    assert prepared.dtype == np.float32 and prepared.flags.c_contiguous
    assert prepared.dtype.isnative and prepared.shape == (2, 2)
    already = np.ones((3, 2), dtype=np.float32)
    assert seed.prepare(already) is already  # nothing to convert: no copy


# --- Model card -----------------------------------------------------------------------


def test_metadata_is_the_model_card(seed_model):
    predictor = Predictor(seed_model)
    card = {p.key: p.value for p in onnx.load(seed_model).metadata_props}
    assert predictor.metadata == card
    assert json.loads(predictor.metadata["feature_names"]) == ["x1", "x2"]
    assert predictor.metadata["input_name"] == predictor.input_name == "features"
    assert predictor.metadata["output_name"] == predictor.output_name == "prediction"
    assert (predictor.feature_names, predictor.target_names) == (["x1", "x2"], ["y"])
    assert (predictor.n_features, predictor.n_targets) == (2, 1)


def test_model_without_a_card_gets_x_and_y_names(tmp_path):
    weight = np.ones((2, 3), dtype=np.float32)
    path = tmp_path / "plain.onnx"
    onnx.save_model(linear_proto(weight, np.zeros(2, dtype=np.float32)), path)
    predictor = Predictor(path)
    assert predictor.metadata == {}
    assert predictor.feature_names == ["x0", "x1", "x2"]
    assert predictor.target_names == ["y0", "y1"]
    named = predictor.predict({"x0": 1.0, "x1": 2.0, "x2": 3.0}, by_name=True)
    assert {k: v.tolist() for k, v in named.items()} == {"y0": [6.0], "y1": [6.0]}


def test_card_names_of_the_wrong_length_fall_back_to_x_and_y(tmp_path):
    card = {"feature_names": json.dumps(["a", "b"]), "target_names": "not json"}
    predictor = Predictor(write_linear(tmp_path / "m.onnx", card=card))
    assert (predictor.feature_names, predictor.target_names) == (["x0", "x1", "x2"], ["y0"])
    assert predictor.metadata == card


def test_repr_names_path_provider_names_and_dtype(seed_model):
    assert repr(Predictor(seed_model, providers="cpu")) == (
        f"Predictor({str(seed_model)!r}, provider='CPUExecutionProvider', "
        "features=['x1', 'x2'], targets=['y'], dtype=float32)"
    )


# --- Threads --------------------------------------------------------------------------


def test_one_predictor_in_many_threads_equals_serial_calls_exactly(seed_model):
    predictor = Predictor(seed_model)
    rng = np.random.default_rng(7)
    jobs: list[np.ndarray] = []
    for i in range(240):
        if i % 3 == 0:
            jobs.append(inputs_in_range(int(rng.integers(2, 300)), seed=i))  # batches
        elif i % 3 == 1:
            jobs.append(inputs_in_range(1, seed=i)[0])  # 1-D single rows (IOBinding path)
        else:
            jobs.append(inputs_in_range(1, seed=i).astype(np.float64))  # converted rows
    serial = [predictor.predict(x) for x in jobs]
    threads = 12
    start = threading.Barrier(threads)

    def worker(k: int) -> list[tuple[int, np.ndarray]]:
        start.wait()
        order = [(k * 37 + i) % len(jobs) for i in range(len(jobs) * 2)]  # each job twice
        return [(j, predictor.predict(jobs[j])) for j in order]

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(worker, range(threads)))
    assert sum(len(r) for r in results) == threads * len(jobs) * 2
    for per_thread in results:
        for j, result in per_thread:
            np.testing.assert_array_equal(result, serial[j])


# --- NaN/infinity checked on the output for linear graphs ---------------------------------


def test_linear_graphs_check_finiteness_on_the_output_others_on_the_input(seed_model, tmp_path):
    assert Predictor(seed_model)._finite_via_output  # one Gemm
    reciprocal = graph_model(
        tmp_path / "reciprocal.onnx",
        [
            helper.make_node("Gemm", ["features", "weight", "bias"], ["linear"], transB=1),
            helper.make_node("Div", ["one", "linear"], ["prediction"]),
        ],
        [value("features", TensorProto.FLOAT, ["batch", 3])],
        [value("prediction", TensorProto.FLOAT, ["batch", 1])],
        [
            numpy_helper.from_array(WEIGHT, "weight"),
            numpy_helper.from_array(BIAS, "bias"),
            numpy_helper.from_array(np.ones(1, np.float32), "one"),
        ],
    )
    divided = Predictor(reciprocal)
    assert not divided._finite_via_output  # 1 / inf is 0: a Div can hide a bad input
    bad = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, np.inf]], dtype=np.float32)
    assert divided.session.run(None, {"features": bad})[0][1, 0] == 0.0  # hidden
    with pytest.raises(InputError, match=r"row 2, column 'x2': expected a finite number, got inf"):
        divided.predict(bad)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("column", [0, 1])
def test_every_non_finite_input_cell_is_caught_through_the_output(seed, bad, column):
    rows = inputs_in_range(50)
    rows[37, column] = bad
    name = ["x1", "x2"][column]
    with pytest.raises(InputError, match=rf"row 38, column '{name}': expected a finite number"):
        seed.predict(rows)
    with pytest.raises(InputError, match=rf"row 1, column '{name}': expected a finite number"):
        seed.predict(rows[37])  # the single-row path too


def test_finite_inputs_that_overflow_the_output_are_returned_not_refused(seed):
    big = np.float32(3e38)
    result = seed.predict(np.array([[big, big]], dtype=np.float32))
    assert np.isinf(result[0, 0])  # float32 overflow of x1 + x2 - 1: the math, not bad input


# --- Run-time failures and row counts: a typed error naming the model, never a wrong shape


def gemm_with_bias(path: Path, bias: np.ndarray) -> Path:
    return graph_model(
        path,
        [helper.make_node("Gemm", ["features", "weight", "bias"], ["prediction"], transB=1)],
        [value("features", TensorProto.FLOAT, ["batch", 3])],
        [value("prediction", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(WEIGHT, "weight"), numpy_helper.from_array(bias, "bias")],
    )


@pytest.mark.parametrize("rows", [1, 2, 5])
def test_a_gemm_bias_that_fails_at_run_time_is_a_model_run_error(tmp_path, rows):
    # Loads (onnxruntime checks the bias's shape only when it runs), then fails on every batch.
    path = gemm_with_bias(tmp_path / "bias.onnx", np.ones(4, np.float32))
    predictor = Predictor(path)
    with pytest.raises(ModelRunError) as caught:
        predictor.predict(np.ones((rows, 3), np.float32))
    message = str(caught.value)
    assert message.startswith(
        f"onnxruntime failed to run model {str(path)!r} on {rows} row{'s' if rows > 1 else ''}: "
    )
    assert "Gemm: Invalid bias shape for broadcast" in message
    assert message.endswith(f"check it with `toolkit info {path}` or re-export it.")
    assert isinstance(caught.value.__cause__, Exception)  # onnxruntime's error, chained


def reshaped(path: Path, shape: list[int], batch: str | int = "batch") -> Path:
    """features -> Reshape(shape) -> MatMul by ones: the rows depend on `shape`."""
    return graph_model(
        path,
        [
            helper.make_node("Reshape", ["features", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "one"], ["prediction"]),
        ],
        [value("features", TensorProto.FLOAT, [batch, 2])],
        [value("prediction", TensorProto.FLOAT, [batch, 1])],
        [
            numpy_helper.from_array(np.array(shape, np.int64), "shape"),
            numpy_helper.from_array(np.ones((shape[-1], 1), np.float32), "one"),
        ],
    )


def test_a_graph_returning_more_rows_than_it_was_given_is_an_error(tmp_path):
    # [n, 2] -> [2n, 1]: 4 predictions for 2 rows, 2 for 1 row.
    path = reshaped(tmp_path / "doubled.onnx", [-1, 1])
    predictor = Predictor(path)
    with pytest.raises(ModelRunError) as caught:
        predictor.predict(np.ones((2, 2), np.float32))
    assert str(caught.value) == (
        f"model {str(path)!r} returned an array of shape (4, 1) for 2 input rows; a regressor "
        "returns one row of 1 per input row. The model file is broken: re-export it."
    )
    with pytest.raises(ModelRunError, match=r"on 1 row: .*prediction"):
        predictor.predict(np.ones(2, np.float32))  # IOBinding: onnxruntime checks the shape


def test_a_fixed_batch_hidden_inside_the_graph_is_refused_at_load(tmp_path):
    # The signature says any batch; a Reshape to [3, 2] inside says 3 rows only, and
    # onnxruntime's shape inference carries that to the output, which is then checked.
    path = reshaped(tmp_path / "fixed.onnx", [3, 2])
    with pytest.raises(ModelLoadError, match=r"its output has 3 rows whatever the input's"):
        Predictor(path)


def test_a_batch_of_zero_rows_declared_fails_at_run_time_as_a_model_run_error(tmp_path):
    # A mutated dimension: the input takes batches of 0 rows only, which onnxruntime
    # finds out when it runs.
    path = write_linear(tmp_path / "zero.onnx", batch=0)
    predictor = Predictor(path)
    assert predictor.predict(np.empty((0, 3))).shape == (0, 1)
    for rows in (1, 2):
        with pytest.raises(ModelRunError, match=rf"^onnxruntime failed to run model .* on {rows} "):
            predictor.predict(np.ones((rows, 3), np.float32))


def test_an_output_batch_fixed_unlike_the_inputs_is_refused_at_load(tmp_path):
    path = graph_model(
        tmp_path / "one-row.onnx",
        [helper.make_node("Gemm", ["features", "weight", "bias"], ["prediction"], transB=1)],
        [value("features", TensorProto.FLOAT, ["batch", 3])],
        [value("prediction", TensorProto.FLOAT, [1, 1])],
        [numpy_helper.from_array(WEIGHT, "weight"), numpy_helper.from_array(BIAS, "bias")],
    )
    with pytest.raises(ModelLoadError) as caught:
        Predictor(path)
    assert str(caught.value) == (
        f"{str(path)!r} has input features: tensor(float)['batch', 3] and output prediction: "
        "tensor(float)[1, 1]: its output has 1 rows whatever the input's 'batch'; expected "
        "one output row per input row (the same batch dimension). Re-export the model."
    )


def test_a_fixed_batch_model_runs_its_own_batch_size_and_refuses_others(tmp_path):
    path = write_linear(tmp_path / "three.onnx", batch=3)
    predictor = Predictor(path)
    x = np.array([[1.0, 2.0, 4.0], [0.5, -1.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(predictor.predict(x), x @ WEIGHT.T.astype(np.float64) + BIAS)
    with pytest.raises(InputError, match=r"expected batches of exactly 3 rows"):
        predictor.predict(x[:2])


# --- onnxruntime's compiled session (the fast path) and its public calls agree ----------


def test_the_public_onnxruntime_calls_give_the_same_answers_and_errors(seed_model, monkeypatch):
    # The Predictor calls the compiled session inside onnxruntime's wrapper (~1 us a call
    # cheaper); a build without it gets the public calls. Both must be bit-identical to a
    # plain session.run, the independent reference, on single rows and batches.
    fast = Predictor(seed_model)
    monkeypatch.setattr("toolkit.runtime.predictor.compiled_session", lambda session: None)
    public = Predictor(seed_model)
    assert fast._compiled is not None and public._compiled is None
    for rows in (1, 2, 300):
        x = inputs_in_range(rows, seed=rows)
        (reference,) = fast.session.run(None, {"features": x})
        np.testing.assert_array_equal(fast.predict(x), reference)  # bit-identical: same graph
        np.testing.assert_array_equal(public.predict(x), reference)
    bad = inputs_in_range(3)
    bad[2, 1] = np.nan
    for predictor in (fast, public):
        with pytest.raises(InputError, match=r"row 1, column 'x2': expected a finite number"):
            predictor.predict(bad[2])
        with pytest.raises(InputError, match=r"row 3, column 'x2': expected a finite number"):
            predictor.predict(bad)


@pytest.mark.parametrize("rows", [1, 4])
def test_run_time_failures_are_the_same_model_run_error_on_the_public_calls(
    tmp_path, monkeypatch, rows
):
    path = gemm_with_bias(tmp_path / "bias.onnx", np.ones(4, np.float32))
    monkeypatch.setattr("toolkit.runtime.predictor.compiled_session", lambda session: None)
    predictor = Predictor(path)
    with pytest.raises(ModelRunError, match=r"Gemm: Invalid bias shape for broadcast"):
        predictor.predict(np.ones((rows, 3), np.float32))
