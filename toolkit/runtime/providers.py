"""Execution providers: which one "auto" picks, and honest errors when one cannot run.

onnxruntime silently falls back to the CPU when a provider it lists fails to load; the
Predictor compares what it asked for with what runs and reports `ProviderError` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnxruntime as ort

from toolkit.errors import ProviderError

# "auto" asks for every one of these that onnxruntime offers, in this order, CPU last.
# onnxruntime runs the first that loads, so a GPU build whose TensorRT libraries are
# missing runs on CUDA, not on the CPU; `Predictor.provider` names the one that runs.
PROVIDER_ORDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def provider_chain(providers: str | Sequence[str]) -> tuple[list[str], bool]:
    """(ordered onnxruntime provider names, whether the first was asked for explicitly)."""
    available = ort.get_available_providers()
    if isinstance(providers, str):
        if providers == "auto":
            chain = [p for p in PROVIDER_ORDER[:-1] if p in available]
            return [*chain, "CPUExecutionProvider"], False
        providers = [providers]
    chain = [PROVIDER_ALIASES.get(p.lower(), p) for p in providers]
    for name in chain:
        if name not in available:
            raise ProviderError(
                f"execution provider {name!r} is not available in this onnxruntime "
                f"({_package_name()} {ort.__version__}); available: {', '.join(available)}. "
                + _install_hint(name)
            )
    if "CPUExecutionProvider" not in chain:
        chain.append("CPUExecutionProvider")
    return chain, True


def _package_name() -> str:
    from importlib import metadata

    for name in ("onnxruntime-gpu", "onnxruntime"):
        try:
            metadata.version(name)
            return name
        except metadata.PackageNotFoundError:
            continue
    return "onnxruntime"


def _install_hint(provider: str) -> str:
    if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        return (
            "Install onnxruntime-gpu (instead of onnxruntime) with CUDA and cuDNN, "
            "or use providers='cpu'."
        )
    return "Use providers='auto' or one of the available providers."


def fallback_message(requested: str, used: str) -> str:
    # `requested` is in ort.get_available_providers() here: the package supports it, so
    # installing onnxruntime-gpu is not the fix; the libraries it loads at run time are.
    if requested in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        reason = (
            "its libraries failed to load (for CUDA: a CUDA 12 runtime, cuDNN 9 and a driver "
            "must be installed and on the library path)"
        )
        hint = "Install them, or use providers='cpu' to run on the CPU."
    else:
        reason = "it failed to initialise"
        hint = "Check its installation, or use providers='cpu' to run on the CPU."
    return f"asked for {requested} but onnxruntime is running {used}: {reason}. {hint}"
