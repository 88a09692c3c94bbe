"""toolkit/runtime: the torch-free Predictor (imports, providers, inputs, loading, threads)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import local_function_model
from onnx import TensorProto, helper, numpy_helper

from toolkit.export import export_model
from toolkit.runtime import (
    PROVIDER_ORDER,
    InputError,
    ModelLoadError,
    Predictor,
    ProviderError,
)
from toolkit.training import TrainConfig, train

REAL_SESSION = ort.InferenceSession
# The seed model is y = x1 + x2 - 1 in float32. Inputs stay within [-10, 10], so the exact
# result is below 21 in magnitude and float32 rounding (weights, products, sum) stays
# within a few ulp of 16 (ulp 2**-19 ~ 1.9e-6): 1e-5 bounds it.
SEED_ATOL = 1e-5


def seed_math(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1, 2)
    return (x[:, 0] + x[:, 1] - 1)[:, None]


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
def float64_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("float64")
    train(TrainConfig(dtype="float64", out=folder / "m.pt"))
    export_model(folder / "m.pt", folder / "m.onnx")
    return folder / "m.onnx"


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


# --- Providers ------------------------------------------------------------------------


@pytest.fixture
def fake_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[list[str]]]:
    """Pretend onnxruntime offers `available` and its sessions report `running`.

    The sessions are real CPU sessions (so the model still runs); returns the list of
    provider chains the Predictor asked for.
    """

    def install(available: list[str], running: list[str] | None = None) -> list[list[str]]:
        requested: list[list[str]] = []

        class ReportingSession:
            def __init__(self, source, options=None, providers=None):
                requested.append(list(providers))
                self._real = REAL_SESSION(source, options, providers=["CPUExecutionProvider"])

            def get_providers(self) -> list[str]:
                return list(running) if running is not None else list(requested[-1])

            def __getattr__(self, name: str):
                return getattr(self._real, name)

        monkeypatch.setattr(ort, "get_available_providers", lambda: list(available))
        monkeypatch.setattr(ort, "InferenceSession", ReportingSession)
        return requested

    return install


def runtime_package() -> str:
    """The distribution that provides onnxruntime here (the GPU build has its own name)."""
    try:
        metadata.version("onnxruntime-gpu")
        return "onnxruntime-gpu"
    except metadata.PackageNotFoundError:
        return "onnxruntime"


def test_provider_order_puts_cpu_last():
    assert PROVIDER_ORDER[-1] == "CPUExecutionProvider"
    assert PROVIDER_ORDER.index("TensorrtExecutionProvider") < PROVIDER_ORDER.index(
        "CUDAExecutionProvider"
    )


def test_auto_takes_the_best_available_provider_in_provider_order(seed_model, fake_onnxruntime):
    # Listed out of order, with one provider (Azure) that PROVIDER_ORDER does not rank.
    requested = fake_onnxruntime(
        [
            "AzureExecutionProvider",
            "CPUExecutionProvider",
            "CUDAExecutionProvider",
            "TensorrtExecutionProvider",
        ]
    )
    predictor = Predictor(seed_model, providers="auto")
    assert requested == [["TensorrtExecutionProvider", "CPUExecutionProvider"]]
    assert predictor.provider == "TensorrtExecutionProvider"


def test_auto_without_accelerators_runs_on_cpu_alone(seed_model, fake_onnxruntime):
    requested = fake_onnxruntime(["AzureExecutionProvider", "CPUExecutionProvider"])
    assert Predictor(seed_model).provider == "CPUExecutionProvider"
    assert requested == [["CPUExecutionProvider"]]


def test_auto_on_this_machine_runs_and_names_a_real_provider(seed_model):
    predictor = Predictor(seed_model, providers="auto")
    assert predictor.provider == predictor._session.get_providers()[0]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert predictor.provider == "CPUExecutionProvider"
    x = inputs_in_range(10)
    np.testing.assert_allclose(predictor.predict(x), seed_math(x), rtol=0, atol=SEED_ATOL)


@pytest.mark.parametrize(
    "providers", ["cpu", "CPU", "CPUExecutionProvider", ["CPUExecutionProvider"], ("cpu",)]
)
def test_explicit_cpu_by_alias_name_or_list(seed_model, providers):
    predictor = Predictor(seed_model, providers=providers)
    assert predictor.provider == "CPUExecutionProvider"
    assert predictor._session.get_providers() == ["CPUExecutionProvider"]
    x = inputs_in_range(5)
    np.testing.assert_allclose(predictor.predict(x), seed_math(x), rtol=0, atol=SEED_ATOL)


def test_an_explicit_list_is_passed_in_order_with_cpu_appended(seed_model, fake_onnxruntime):
    requested = fake_onnxruntime(
        ["CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider"]
    )
    predictor = Predictor(seed_model, providers=["openvino", "CUDAExecutionProvider"])
    assert requested == [
        ["OpenVINOExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    ]
    assert predictor.provider == "OpenVINOExecutionProvider"


def test_cuda_without_onnxruntime_gpu_is_a_provider_error_saying_what_to_install(
    seed_model, monkeypatch
):
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["AzureExecutionProvider", "CPUExecutionProvider"]
    )
    with pytest.raises(ProviderError) as caught:
        Predictor(seed_model, providers="cuda")
    assert str(caught.value) == (
        "execution provider 'CUDAExecutionProvider' is not available in this onnxruntime "
        f"({runtime_package()} {ort.__version__}); available: AzureExecutionProvider, "
        "CPUExecutionProvider. Install onnxruntime-gpu (instead of onnxruntime) with CUDA and "
        "cuDNN, or use providers='cpu'."
    )


def test_cuda_is_refused_before_a_session_is_opened(seed_model, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: pytest.fail("session opened"))
    with pytest.raises(ProviderError, match="onnxruntime-gpu"):
        Predictor(seed_model, providers="CUDAExecutionProvider")


def test_unknown_provider_name_lists_the_available_ones(seed_model, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ProviderError) as caught:
        Predictor(seed_model, providers="gpu")
    assert str(caught.value) == (
        "execution provider 'gpu' is not available in this onnxruntime "
        f"({runtime_package()} {ort.__version__}); available: "
        "CPUExecutionProvider. Use providers='auto' or one of the available providers."
    )


def test_silent_cpu_fallback_from_an_explicit_cuda_request_is_a_provider_error(
    seed_model, fake_onnxruntime
):
    requested = fake_onnxruntime(
        ["CUDAExecutionProvider", "CPUExecutionProvider"], running=["CPUExecutionProvider"]
    )
    with pytest.raises(ProviderError) as caught:
        Predictor(seed_model, providers="cuda")
    assert requested == [["CUDAExecutionProvider", "CPUExecutionProvider"]]
    assert str(caught.value) == (
        "asked for CUDAExecutionProvider but onnxruntime is running CPUExecutionProvider: "
        "its libraries failed to load (for CUDA: a CUDA 12 runtime, cuDNN 9 and a driver must "
        "be installed and on the library path). Install them, or use providers='cpu' to run "
        "on the CPU."
    )


def test_silent_fallback_of_another_explicit_provider_is_an_error_too(seed_model, fake_onnxruntime):
    fake_onnxruntime(
        ["OpenVINOExecutionProvider", "CPUExecutionProvider"], running=["CPUExecutionProvider"]
    )
    with pytest.raises(ProviderError) as caught:
        Predictor(seed_model, providers="openvino")
    assert str(caught.value) == (
        "asked for OpenVINOExecutionProvider but onnxruntime is running CPUExecutionProvider: "
        "it failed to initialise. Check its installation, or use providers='cpu' to run on "
        "the CPU."
    )


def test_auto_accepts_a_fallback_and_names_what_really_runs(seed_model, fake_onnxruntime):
    fake_onnxruntime(
        ["CUDAExecutionProvider", "CPUExecutionProvider"], running=["CPUExecutionProvider"]
    )
    assert Predictor(seed_model, providers="auto").provider == "CPUExecutionProvider"


def test_provider_names_the_one_onnxruntime_runs(seed_model, fake_onnxruntime):
    fake_onnxruntime(
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
        running=["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    predictor = Predictor(seed_model, providers="cuda")
    assert predictor.provider == "CUDAExecutionProvider"
    assert "provider='CUDAExecutionProvider'" in repr(predictor)


def test_thread_counts_reach_the_session_options(seed_model):
    predictor = Predictor(seed_model, intra_op_threads=1, inter_op_threads=2)
    options = predictor._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 2)
    x = inputs_in_range(50)
    np.testing.assert_allclose(predictor.predict(x), seed_math(x), rtol=0, atol=SEED_ATOL)


def test_thread_counts_default_to_onnxruntimes_own(seed_model):
    options = Predictor(seed_model)._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (0, 0)


@pytest.mark.gpu
def test_cuda_provider_runs_and_agrees_with_cpu(seed_model):
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
    gpu, cpu = Predictor(seed_model, providers="cuda"), Predictor(seed_model, providers="cpu")
    assert gpu.provider == "CUDAExecutionProvider"
    x = inputs_in_range(4096)
    # Both are float32 Gemms on the same weights; the GPU may fuse differently: 1e-5.
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=0, atol=SEED_ATOL)
    np.testing.assert_allclose(gpu.predict(x[0]), cpu.predict(x[0]), rtol=0, atol=SEED_ATOL)


# --- Inputs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed(seed_model) -> Predictor:
    return Predictor(seed_model)


def test_numpy_1d_is_one_row(seed):
    result = seed.predict(np.array([1.5, 2.25], dtype=np.float32))
    assert result.shape == (1, 1) and result.dtype == np.float32
    np.testing.assert_allclose(result, [[2.75]], rtol=0, atol=SEED_ATOL)


@pytest.mark.parametrize("rows", [2, 3, 1000])
def test_numpy_2d_batch_gives_n_by_targets_with_the_models_math(seed, rows):
    x = inputs_in_range(rows, seed=rows)
    result = seed.predict(x)
    assert result.shape == (rows, 1) and result.dtype == np.float32
    np.testing.assert_allclose(result, seed_math(x), rtol=0, atol=SEED_ATOL)


def test_nested_lists_and_tuples(seed):
    expected = [[2.0], [6.0]]
    for data in ([[1, 2], [3, 4]], ((1.0, 2.0), (3.0, 4.0)), [(1, 2.0), [3.0, 4]]):
        np.testing.assert_allclose(seed.predict(data), expected, rtol=0, atol=SEED_ATOL)
    np.testing.assert_allclose(seed.predict([1.0, 2.0]), [[2.0]], rtol=0, atol=SEED_ATOL)


def test_mapping_of_feature_name_to_column(seed):
    columns = {"x2": [2.0, 4.0, -1.0], "x1": np.array([1.0, 3.0, 0.5])}  # any key order
    np.testing.assert_allclose(
        seed.predict(columns), [[2.0], [6.0], [-1.5]], rtol=0, atol=SEED_ATOL
    )
    np.testing.assert_allclose(
        seed.predict({"x1": 1.0, "x2": 2.0}), [[2.0]], rtol=0, atol=SEED_ATOL
    )


def test_mapping_with_missing_name(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"x1": [1.0]})
    assert str(caught.value) == "expected columns x1, x2; missing 'x2'"


def test_mapping_with_extra_name(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"x1": [1.0], "x2": [2.0], "id": [7]})
    assert str(caught.value) == "expected columns x1, x2; unknown 'id'"


def test_mapping_with_wrong_name_reports_missing_and_unknown(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"X1": [1.0], "x2": [2.0]})
    assert str(caught.value) == "expected columns x1, x2; missing 'x1' and unknown 'X1'"


def test_mapping_with_columns_of_unequal_length(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"x1": [1.0, 2.0], "x2": [1.0, 2.0, 3.0]})
    assert str(caught.value) == "expected columns of equal length, got x1: 2, x2: 3"


def test_mapping_with_a_2d_column_is_an_input_error(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"x1": [[1.0, 2.0]], "x2": [[1.0, 2.0]]})
    assert str(caught.value) == (
        "column 'x1': expected a number or a 1-D sequence of numbers, got an array of shape (1, 2)"
    )
    with pytest.raises(InputError, match=r"^column 'x1': expected a number or a 1-D"):
        seed.predict({"x1": [["a"]], "x2": [["b"]]})


def test_mapping_with_a_text_value_names_row_and_column(seed):
    with pytest.raises(InputError) as caught:
        seed.prepare({"x1": [1.0, 2.0], "x2": ["3", "four"]}, first_row=10)
    assert str(caught.value) == "row 11, column 'x2': expected a number, got 'four'"


def test_mapping_with_a_boolean_in_a_list_column_is_refused(seed):
    with pytest.raises(InputError) as caught:
        seed.predict({"x1": [1.0, 2.0], "x2": [0, True]})
    assert str(caught.value) == "row 2, column 'x2': expected a number, got True"


def test_dataframe_by_column_name(seed):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"id": ["a", "b"], "x2": [2.0, 4.0], "x1": [1, 3]})
    np.testing.assert_allclose(seed.predict(frame), [[2.0], [6.0]], rtol=0, atol=SEED_ATOL)
    named = seed.predict(frame, by_name=True)
    np.testing.assert_allclose(named["y"], [2.0, 6.0], rtol=0, atol=SEED_ATOL)


def test_dataframe_missing_a_feature_column(seed):
    pd = pytest.importorskip("pandas")
    with pytest.raises(InputError) as caught:
        seed.predict(pd.DataFrame({"x1": [1.0], "z": [2.0]}))
    assert str(caught.value) == "the DataFrame lacks column 'x2'; expected x1, x2"
    with pytest.raises(InputError) as caught:
        seed.predict(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    assert str(caught.value) == "the DataFrame lacks columns 'x1', 'x2'; expected x1, x2"


def test_dataframe_with_text_names_row_and_column(seed):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x1": [1.0, 2.0, 3.0], "x2": ["1", "2", "n/a"]})
    with pytest.raises(InputError) as caught:
        seed.predict(frame)
    assert str(caught.value) == "row 3, column 'x2': expected a number, got 'n/a'"


def test_wrong_feature_count(seed):
    with pytest.raises(InputError) as caught:
        seed.predict(np.zeros((4, 3)))
    assert str(caught.value) == "expected 2 features per row (x1, x2), got 3"
    with pytest.raises(InputError, match=re.escape("(x1, x2), got 1")):
        seed.predict([5.0])


@pytest.mark.parametrize(
    ("data", "shape"), [(np.zeros((2, 2, 2)), "(2, 2, 2)"), (np.float32(1.0), "()")]
)
def test_wrong_rank(seed, data, shape):
    with pytest.raises(InputError) as caught:
        seed.predict(data)
    assert str(caught.value) == (
        f"expected a 1-D row or a 2-D batch of shape (n, 2), got an array of shape {shape}"
    )


def test_ragged_rows(seed):
    with pytest.raises(InputError) as caught:
        seed.predict([[1.0, 2.0], [3.0]])
    assert str(caught.value) == "expected rows of equal length, got a ragged sequence"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([[1.0, 2.0], [3.0, "x"]], "row 2, column 'x2': expected a number, got 'x'"),
        ([[1.0, 2.0], [None, 4.0]], "row 2, column 'x1': expected a number, got None"),
        (np.array([[1.0, {}]], dtype=object), "row 1, column 'x2': expected a number, got {}"),
        ([[1.0, 2.0], [3.0, True]], "row 2, column 'x2': expected a number, got True"),
        ([1.5, np.True_], "row 1, column 'x2': expected a number, got np.True_"),
        (
            np.array([[True, False]]),
            "expected numbers, got booleans (dtype bool); convert them explicitly",
        ),
        (np.array([[1 + 2j, 0]]), "expected real numbers, got complex numbers (dtype complex128)"),
        (
            np.array([["1", "2"]]),
            "expected numbers, got an array of dtype <U1; convert it to float first",
        ),
    ],
)
def test_non_numeric_values_name_row_and_column(seed, data, message):
    with pytest.raises(InputError) as caught:
        seed.predict(data)
    assert str(caught.value) == message


def test_row_numbers_start_at_first_row(seed):
    with pytest.raises(InputError) as caught:
        seed.prepare([[1.0, 2.0], [3.0, "x"]], first_row=42)
    assert str(caught.value) == "row 43, column 'x2': expected a number, got 'x'"


@pytest.mark.parametrize(("bad", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_nan_and_infinity_are_refused_by_default(seed, bad, shown):
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, bad]], dtype=np.float32)
    with pytest.raises(InputError) as caught:
        seed.predict(x)
    assert str(caught.value) == (
        f"row 3, column 'x2': expected a finite number, got {shown}; NaN and infinity are "
        "refused (Predictor(..., allow_non_finite=True) accepts them)"
    )


def test_allow_non_finite_passes_nan_and_infinity_through(seed_model):
    predictor = Predictor(seed_model, allow_non_finite=True)
    result = predictor.predict(np.array([[np.nan, 1.0], [np.inf, 1.0], [1.0, 2.0]]))
    assert np.isnan(result[0, 0]) and result[1, 0] == np.inf
    np.testing.assert_allclose(result[2], [2.0], rtol=0, atol=SEED_ATOL)
    assert np.isnan(predictor.predict([np.nan, 0.0])[0, 0])  # the single-row path too


def test_float64_beyond_float32_range_is_refused_not_turned_into_infinity(seed_model):
    for allow in (False, True):
        predictor = Predictor(seed_model, allow_non_finite=allow)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "overflow encountered in cast" either
            with pytest.raises(InputError) as caught:
                predictor.predict(np.array([[1.0, 2.0], [-1e300, 0.0]]))
        assert str(caught.value) == (
            "row 2, column 'x1': -1e+300 is beyond the range of the model's float32 "
            "(largest magnitude 3.40282e+38); scale the input or use a float64 model"
        )


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float64, np.float16])
def test_ints_and_other_floats_are_converted_to_the_models_dtype(seed, dtype):
    x = np.array([[1, 2], [3, 4], [-5, 7]]) if dtype != np.uint8 else np.array([[1, 2], [3, 4]])
    typed = x.astype(dtype)
    prepared = seed.prepare(typed)
    assert prepared.dtype == np.float32 and prepared.flags.c_contiguous
    # Small integers are exact in every one of these dtypes and in float32.
    np.testing.assert_array_equal(seed.predict(typed), seed.predict(x.astype(np.float32)))
    np.testing.assert_allclose(seed.predict(typed), seed_math(x), rtol=0, atol=SEED_ATOL)


def test_float32_input_is_converted_for_a_float64_model(float64_model):
    predictor = Predictor(float64_model)
    assert predictor.dtype == np.float64
    x = inputs_in_range(20)
    result = predictor.predict(x)
    assert result.dtype == np.float64
    # float64 weights fitted exactly to y = x1 + x2 - 1: rounding ~1e-15 on values < 21.
    np.testing.assert_allclose(result, seed_math(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i4"])
def test_big_endian_arrays_give_the_native_result(seed, dtype):
    x = inputs_in_range(7).round(2)
    swapped = x.astype(dtype)
    assert not swapped.dtype.isnative
    assert seed.prepare(swapped).dtype.isnative
    np.testing.assert_array_equal(seed.predict(swapped), seed.predict(swapped.astype(dtype[1:])))
    np.testing.assert_array_equal(seed.predict(swapped[0]), seed.predict(swapped[0:1]))


def test_non_contiguous_views_give_the_contiguous_result(seed):
    wide = inputs_in_range(40).reshape(20, 4)
    views = {
        "every other row": inputs_in_range(40)[::2],
        "columns of a wider array": wide[:, 1:3],
        "fortran order": np.asfortranarray(inputs_in_range(9)),
        "transposed": inputs_in_range(6).T.copy().T,
        "reversed": inputs_in_range(5)[::-1],
    }
    for name, view in views.items():
        assert not view.flags.c_contiguous, name
        expected = seed.predict(np.ascontiguousarray(view))
        np.testing.assert_array_equal(seed.predict(view), expected, err_msg=name)
    strided_row = np.array([1.0, 9.0, 2.0, 9.0], dtype=np.float32)[::2]
    np.testing.assert_allclose(seed.predict(strided_row), [[2.0]], rtol=0, atol=SEED_ATOL)


def test_empty_batch_returns_zero_rows_of_n_targets(seed, two_target_model):
    result = seed.predict(np.empty((0, 2), dtype=np.float32))
    assert result.shape == (0, 1) and result.dtype == np.float32
    assert seed.predict({"x1": [], "x2": []}).shape == (0, 1)
    assert Predictor(two_target_model).predict(np.empty((0, 2))).shape == (0, 2)
    named = seed.predict(np.empty((0, 2)), by_name=True)
    assert list(named) == ["y"] and named["y"].shape == (0,)


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


def test_fixed_batch_model_explains_the_batch_size(tmp_path):
    predictor = Predictor(write_linear(tmp_path / "fixed.onnx", batch=2))
    assert predictor.predict(np.ones((2, 3))).shape == (2, 1)
    assert predictor.predict(np.ones((0, 3))).shape == (0, 1)
    with pytest.raises(InputError) as caught:
        predictor.predict(np.ones((5, 3)))
    assert str(caught.value) == (
        "expected batches of exactly 2 rows (the model's input shape is [2, 3]), got 5; "
        "split the input or export the model with a dynamic batch axis"
    )


def test_input_error_is_a_value_error_with_usage_exit_code():
    assert issubclass(InputError, ValueError) and InputError.exit_code == 2


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
    # Parses as a ModelProto with a graph, but the Gemm has no inputs.
    path = graph_model(
        tmp_path / "broken.onnx",
        [helper.make_node("Gemm", [], ["y"])],
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
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)],
        [value("x", TensorProto.FLOAT, ["n", 2])],
        [value("y", TensorProto.FLOAT, ["n"])],
        [numpy_helper.from_array(np.array([1]), "axes")],
    )
    with pytest.raises(ModelLoadError, match=re.escape("output y: tensor(float)['n']; expected")):
        Predictor(path)


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
    clipped = graph_model(
        tmp_path / "relu.onnx",
        [
            helper.make_node("Gemm", ["features", "weight", "bias"], ["linear"], transB=1),
            helper.make_node("Relu", ["linear"], ["prediction"]),
        ],
        [value("features", TensorProto.FLOAT, ["batch", 3])],
        [value("prediction", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(WEIGHT, "weight"), numpy_helper.from_array(BIAS, "bias")],
    )
    relu = Predictor(clipped)
    assert not relu._finite_via_output  # Relu could hide a NaN: scan the input
    with pytest.raises(InputError, match=r"row 2, column 'x1': expected a finite number, got nan"):
        relu.predict(np.array([[1.0, 2.0, 3.0], [1.0, np.nan, 3.0]], dtype=np.float32))


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
