"""toolkit/export/parity.py: probes, the report, and the gate's tolerance rule."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from toolkit.defaults import PARITY_TOLERANCES as DEFAULT_TOLERANCES
from toolkit.export.parity import ParityReport, check_parity, probe_batches


def linear_onnx(path, weight: np.ndarray, bias: np.ndarray) -> None:
    """A hand-built Gemm model, so the gate can be tested without the exporter."""
    elem = TensorProto.DOUBLE if weight.dtype == np.float64 else TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["features", "weight", "bias"], ["prediction"], transB=1)],
        "linear",
        [helper.make_tensor_value_info("features", elem, ["batch", weight.shape[1]])],
        [helper.make_tensor_value_info("prediction", elem, ["batch", weight.shape[0]])],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save_model(model, path)


def torch_linear(weight: np.ndarray, bias: np.ndarray) -> torch.nn.Linear:
    model = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.from_numpy(weight).dtype)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(weight))
        model.bias.copy_(torch.from_numpy(bias))
    return model.eval()


@pytest.fixture
def weights():
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, 5)).astype(np.float32), rng.standard_normal(2).astype(np.float32)


def test_probes_are_deterministic_and_cover_the_required_sizes():
    sample = np.arange(20.0).reshape(10, 2)
    first, second = probe_batches(sample), probe_batches(sample)
    assert list(first) == [
        "training sample",
        "batch of 1",
        "batch of 2",
        "batch of 7",
        "batch of 4096",
    ]
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    assert np.abs(first["batch of 4096"]).max() == 1e6


def test_matching_model_passes_with_a_full_report(tmp_path, weights):
    weight, bias = weights
    linear_onnx(tmp_path / "m.onnx", weight, bias)
    sample = np.random.default_rng(1).standard_normal((50, 5))
    report = check_parity(
        torch_linear(weight, bias), tmp_path / "m.onnx", sample, 1e-5, 1e-5, "features"
    )
    assert isinstance(report, ParityReport)
    assert report.passed
    data = report.to_dict()
    assert data["atol"] == 1e-5 and data["rtol"] == 1e-5
    cpu = data["providers"]["CPUExecutionProvider"]
    assert set(cpu) == {"passed", "used", "max_abs_diff", "max_rel_diff", "rows_checked"}
    assert cpu["rows_checked"] == 50 + 1 + 2 + 7 + 4096
    assert cpu["used"] == "CPUExecutionProvider"
    # Same Gemm on both sides: float32 summation order may differ only by rounding.
    assert cpu["max_abs_diff"] <= 1.0  # outputs reach ~1e6 on the large probes


def test_wrong_values_fail_and_name_the_worst_rows(tmp_path, weights):
    weight, bias = weights
    linear_onnx(tmp_path / "m.onnx", weight * 1.001, bias)
    report = check_parity(
        torch_linear(weight, bias), tmp_path / "m.onnx", np.ones((4, 5)), 1e-5, 1e-5, "features"
    )
    assert not report.passed
    message = report.breach_message("out.onnx")
    assert message.startswith(
        "parity gate failed: ONNX Runtime disagrees with PyTorch; nothing written to out.onnx."
    )
    assert re.search(
        r"CPUExecutionProvider: a difference of \S+ where atol \+ rtol \* scale allows \S+ "
        r"\(\S+x the allowance\); max abs diff \S+, max rel diff \S+ \(atol 1e-05, rtol 1e-05\)",
        message,
    )
    assert message.count(" row ") == 3


def test_wrong_shape_fails_on_shape_before_values(tmp_path, weights):
    weight, bias = weights
    linear_onnx(tmp_path / "m.onnx", np.vstack([weight, weight]), np.concatenate([bias, bias]))
    report = check_parity(
        torch_linear(weight, bias), tmp_path / "m.onnx", np.ones((4, 5)), 1e-5, 1e-5, "features"
    )
    assert not report.passed
    errors = report.providers[0].shape_errors
    assert errors[0] == "training sample: expected (4, 2) float32, got (4, 4) float32"


def test_every_shape_mismatch_is_gathered_and_no_values_are_compared(tmp_path, weights):
    weight, bias = weights
    linear_onnx(tmp_path / "m.onnx", np.vstack([weight, weight]), np.concatenate([bias, bias]))
    report = check_parity(
        torch_linear(weight, bias), tmp_path / "m.onnx", np.ones((4, 5)), 1e-5, 1e-5, "features"
    )
    cpu = report.providers[0]
    assert [error.split(":")[0] for error in cpu.shape_errors] == list(
        probe_batches(np.ones((4, 5)))
    )
    assert cpu.rows_checked == 0 and cpu.worst_rows == []
    assert "    shape: batch of 4096: expected (4096, 2)" in report.breach_message("m.onnx")


def test_tolerance_is_relative_to_the_terms_not_to_a_cancelled_output(tmp_path):
    # Terms of 1e6 that cancel to ~0: a float32 result off by rounding must still pass.
    weight = np.array([[1.0, -1.0]], np.float32)
    bias = np.array([0.0], np.float32)
    linear_onnx(tmp_path / "m.onnx", weight, bias)
    sample = np.array([[1e6, 1e6 - 0.0625]])
    report = check_parity(
        torch_linear(weight, bias), tmp_path / "m.onnx", sample, 1e-5, 1e-5, "features"
    )
    assert report.passed


def test_default_tolerances():
    assert DEFAULT_TOLERANCES["float32"] == (1e-5, 1e-5)
    assert DEFAULT_TOLERANCES["float64"] == (1e-12, 1e-12)


def test_float64_gate_at_1e_12(tmp_path):
    rng = np.random.default_rng(2)
    weight, bias = rng.standard_normal((1, 3)), rng.standard_normal(1)
    linear_onnx(tmp_path / "m.onnx", weight, bias)
    report = check_parity(
        torch_linear(weight, bias),
        tmp_path / "m.onnx",
        rng.standard_normal((9, 3)),
        1e-12,
        1e-12,
        "features",
    )
    assert report.passed
    linear_onnx(tmp_path / "bad.onnx", weight + 1e-9, bias)
    bad = check_parity(
        torch_linear(weight, bias),
        tmp_path / "bad.onnx",
        rng.standard_normal((9, 3)),
        1e-12,
        1e-12,
        "features",
    )
    assert not bad.passed


def test_infinite_weights_fail_the_gate_even_when_both_sides_agree(tmp_path):
    """The issue's case: y = inf*a + inf in float32. Both runtimes give inf or NaN, the
    differences are NaN, and max(old, nan) used to keep the old value: "max abs diff 0"."""
    weight = np.array([[np.inf, 1.0]], dtype=np.float32)
    bias = np.array([np.inf], dtype=np.float32)
    linear_onnx(tmp_path / "m.onnx", weight, bias)
    sample = np.arange(8.0).reshape(4, 2)
    report = check_parity(
        torch_linear(weight, bias), tmp_path / "m.onnx", sample, 1e-5, 1e-5, "features"
    )
    assert not report.passed
    (provider,) = report.providers
    assert any(p.startswith("training sample: onnx output is") for p in provider.non_finite)
    assert any("torch output is" in p for p in provider.non_finite)
    message = report.breach_message("out.onnx")
    assert "CPUExecutionProvider" in message and "non-finite: training sample" in message
    assert "rows (0, 1, 2, 3)" in message
    assert report.to_dict()["providers"]["CPUExecutionProvider"]["non_finite"]


def test_nan_on_the_onnx_side_alone_fails_the_gate_naming_the_rows(tmp_path, weights):
    weight, bias = weights
    linear_onnx(tmp_path / "m.onnx", weight, np.array([np.nan, 0.0], dtype=np.float32))
    report = check_parity(
        torch_linear(weight, bias), tmp_path / "m.onnx", np.ones((3, 5)), 1e-5, 1e-5, "features"
    )
    assert not report.passed
    problems = report.providers[0].non_finite
    assert "training sample: onnx output is nan for finite inputs in 3 rows (0, 1, 2)" in problems
    assert not any("torch" in p for p in problems)
    assert report.providers[0].max_abs_diff == np.inf  # never a NaN swallowed by max()
