"""toolkit/training/device.py and device-dependent training; CUDA twins behind the gpu marker."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import train_json

from toolkit.errors import DeviceError, UsageError
from toolkit.training.device import check_device_name, resolve_device

# float32 tolerance for comparing models trained on two devices: float32 keeps ~7
# significant digits and the exact solver works in float64 on both devices.
FLOAT32_RTOL = 1e-5
FLOAT32_ATOL = 1e-5


def test_cpu_resolves():
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_picks_cuda_when_available():
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert str(resolve_device("auto")) == expected


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "mps", ""])
def test_bad_device_names_are_usage_errors(name):
    with pytest.raises(UsageError, match=r"is not one of auto, cpu, cuda or cuda:N"):
        check_device_name(name)


def test_bad_device_name_exits_2(run):
    result = run("train", "--device", "gpu")
    assert result.exit_code == 2
    assert (
        "Invalid value for '--device': device 'gpu' is not one of auto, cpu, cuda or cuda:N."
        in result.output
    )


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message shown when CUDA is missing"
)
def test_missing_cuda_fails_up_front_with_a_sentence(run):
    result = run("train", "--device", "cuda")
    assert result.exit_code == 2
    assert "Error: --device cuda was requested, but" in result.output
    assert "or use --device cpu." in result.output
    assert "Traceback" not in result.output
    with pytest.raises(DeviceError, match="was requested, but"):
        resolve_device("cuda:0")


def test_missing_cuda_fails_before_reading_data(run, write_csv, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    bad = write_csv("bad.csv", "x,y\n1,oops\n")
    result = run("train", "--device", "cuda", "--data", str(bad))
    assert result.exit_code == 2
    assert "--device cuda was requested" in result.output
    assert "oops" not in result.output


def test_device_index_beyond_the_visible_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(
        DeviceError,
        match=r"--device cuda:3 was requested, but only 1 CUDA device is visible \(cuda:0\)",
    ):
        resolve_device("cuda:3")


# -- CUDA twins ---------------------------------------------------------------------------


@pytest.mark.gpu
def test_cuda_resolves_and_trains_on_cuda(run):
    assert resolve_device("cuda").type == "cuda"
    report = train_json(run, "--device", "cuda")
    assert report["device"].startswith("cuda")
    np.testing.assert_allclose(report["weights"], [[1.0, 1.0]], atol=1e-4)
    np.testing.assert_allclose(report["bias"], [-1.0], atol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exact_on_cuda_matches_cpu(run, scaled_csv, dtype):
    cpu = train_json(
        run, "--data", str(scaled_csv), "--device", "cpu", "--dtype", dtype, "--out", "cpu.pt"
    )
    gpu = train_json(
        run, "--data", str(scaled_csv), "--device", "cuda", "--dtype", dtype, "--out", "gpu.pt"
    )
    np.testing.assert_allclose(gpu["weights"], cpu["weights"], rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)
    np.testing.assert_allclose(gpu["bias"], cpu["bias"], rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)


@pytest.mark.gpu
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_iterative_on_cuda_reaches_the_cpu_model(run, scaled_csv, solver):
    cpu = train_json(
        run, "--data", str(scaled_csv), "--device", "cpu", "--solver", solver, "--out", "c.pt"
    )
    gpu = train_json(
        run, "--data", str(scaled_csv), "--device", "cuda", "--solver", solver, "--out", "g.pt"
    )
    assert gpu["device"].startswith("cuda")
    # Both converge to the same optimum; float32 rounding differs between devices.
    assert abs(gpu["metrics"]["val"]["r2"] - cpu["metrics"]["val"]["r2"]) <= 1e-4
    assert gpu["optimality_gap"]["r2_gap"] <= 1e-4


@pytest.mark.gpu
def test_cuda_index_beyond_count_is_refused():
    with pytest.raises(DeviceError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
