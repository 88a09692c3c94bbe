"""toolkit/runtime/providers.py: which execution provider runs; honest errors otherwise."""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from runtime_models import SEED_ATOL, inputs_in_range, seed_math

from toolkit.runtime import PROVIDER_ORDER, Predictor, ProviderError
from toolkit.runtime.info import describe

REAL_SESSION = ort.InferenceSession


@pytest.fixture(scope="module")
def seed_model(seed_onnx: Path) -> Path:
    return seed_onnx


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


def test_auto_asks_for_every_available_provider_in_provider_order(seed_model, fake_onnxruntime):
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
    assert requested == [
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    ]
    assert predictor.provider == "TensorrtExecutionProvider"


def test_auto_falls_back_from_tensorrt_to_cuda_not_to_the_cpu(seed_model, fake_onnxruntime):
    # onnxruntime-gpu lists TensorRT, but its libraries are missing: onnxruntime skips it
    # and runs the next provider in the chain, which must be CUDA.
    requested = fake_onnxruntime(
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        running=["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    predictor = Predictor(seed_model, providers="auto")
    assert requested == [
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    ]
    assert predictor.provider == "CUDAExecutionProvider"
    assert "provider='CUDAExecutionProvider'" in repr(predictor)
    assert describe(predictor)["provider"] == "CUDAExecutionProvider"
    x = inputs_in_range(3)
    np.testing.assert_allclose(predictor.predict(x), seed_math(x), rtol=0, atol=SEED_ATOL)


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
