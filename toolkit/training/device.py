"""Resolve `--device` once, up front: a missing device fails before any data is read."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.errors import DeviceError, UsageError

if TYPE_CHECKING:
    import torch

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
# `cuda: Optional[str] = None` or `hip = '6.2'` in torch/version.py
GPU_BUILD_LINE = re.compile(r"^(cuda|hip)\b[^=\n]*=\s*(\S+)\s*$", re.MULTILINE)


def surely_cpu(name: str) -> bool:
    """Whether `--device name` resolves to the CPU, known without importing torch: "cpu",
    or "auto" where the installed PyTorch build has no GPU support (its version.py says
    cuda and hip are None). Anything else is for `resolve_device` to settle."""
    name = name.strip().lower()
    if name != "auto":
        return name == "cpu"
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return False
    try:
        text = (Path(spec.origin).parent / "version.py").read_text()
    except OSError:
        return False
    found = dict(GPU_BUILD_LINE.findall(text))
    return found.get("cuda") == "None" and found.get("hip") == "None"


def torch_version() -> str:
    """The installed torch's version, as `torch.__version__` says it, without importing torch."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return str(torch.__version__)
    from importlib.metadata import version  # 20 ms to import: only when writing

    return version("torch")


def check_device_name(name: str) -> str:
    """Validate the spelling only (cheap, no torch import): used by the CLI's option type."""
    name = name.strip().lower()
    if not DEVICE_PATTERN.match(name):
        raise UsageError(f"device {name!r} is not one of {DEVICE_CHOICES}.")
    return name


def resolve_device(name: str) -> torch.device:
    """Turn auto|cpu|cuda|cuda:N into a working torch.device, or say why it cannot be used."""
    import torch

    name = check_device_name(name)
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        name = "cuda"
    device = torch.device(name)
    if device.type == "cpu":
        return device
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            reason = f"this PyTorch build ({torch.__version__}) has no CUDA support"
            remedy = "Install a CUDA build of PyTorch to train on a GPU, or use --device cpu."
        else:
            reason = f"PyTorch (built for CUDA {torch.version.cuda}) sees no GPU"
            remedy = (
                "Check that the NVIDIA driver is loaded (nvidia-smi) and that "
                "CUDA_VISIBLE_DEVICES does not hide the GPU, or use --device cpu."
            )
        raise DeviceError(f"--device {name} was requested, but {reason}. {remedy}")
    count = torch.cuda.device_count()
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index >= count:
        visible = ", ".join(f"cuda:{i}" for i in range(count))
        raise DeviceError(
            f"--device {name} was requested, but only {count} CUDA device"
            f"{'s are' if count > 1 else ' is'} visible ({visible})."
        )
    device = torch.device("cuda", index)
    try:
        torch.zeros(1, device=device)
    except RuntimeError as error:
        raise DeviceError(f"--device {name} is visible but does not work: {error}") from error
    return device
