"""Checkpoints: the weights plus everything that rebuilds and describes the model.

A checkpoint is a `torch.save` file (written by toolkit.training.torchfile, without
torch) holding only tensors and plain data (str, int,
float, bool, None, lists, dicts), so it loads with `torch.load(weights_only=True)`,
which refuses any pickled object that would run code. Files are written atomically.

Layout (format "toolkit.checkpoint", version 1):
    format, format_version
    spec:      {feature_names, target_names, intercept, dtype}
    state_dict: {"weight": (t, d) tensor, "bias": (t,) tensor if intercept}
    training:  {solver, hyperparameters, seed, device, method, condition_number, ...}
    data:      {source, sha256, rows, train_rows, val_rows, val_fraction}
    metrics:   {"train": {...}, "val": {...} or None}
    optimality_gap: {...} or None (iterative solvers)
    history:   {"train": [...], "val": [...]} the losses on standardized targets at epochs
               0 (the initial weights), 1, 2, ... (iterative solvers; None for exact)
    inference: statsmodels-style statistics of the fit (toolkit.training.inference), or
               None; absent from files written before it
    parity_sample: (k, d) float64 tensor of training rows, for the export's parity gate
    versions:  {toolkit, torch, numpy, pyarrow, python}
    created:   ISO 8601 UTC time

An interrupted iterative run's state (format "toolkit.resume", at `resume_path(out)`) is
written, read and checked by `toolkit.training.resume`.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.defaults import RESUME_SUFFIX
from toolkit.errors import CheckpointError
from toolkit.files import atomic_write
from toolkit.training import schema, torchfile
from toolkit.training.model import ModelSpec, build_model

if TYPE_CHECKING:
    import torch

FORMAT = "toolkit.checkpoint"
RESUME_FORMAT = "toolkit.resume"
FORMAT_VERSION = 1
# How torch names the callable a refused pickle wanted to run (wording varies by release).
_UNSAFE_GLOBAL = re.compile(r"unsupported global:?(?: GLOBAL)? ([\w.]+)", re.IGNORECASE)


def resume_path(checkpoint: str | Path) -> Path:
    """Where an interrupted iterative run keeps its state: next to its checkpoint."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + RESUME_SUFFIX)


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` atomically (temp file in the same folder, fsync, rename), in
    torch.save's format (toolkit.training.torchfile: no torch needed)."""
    path = Path(path)
    data = torchfile.dumps(_plain(payload))
    try:
        with atomic_write(path) as handle:
            handle.write(data)
    except OSError as error:
        raise CheckpointError(
            f"cannot write {str(path)!r}: {error.strerror or error}. Choose another --out."
        ) from error
    return path


def load(path: str | Path, expected_format: str = FORMAT) -> dict[str, Any]:
    """Load a checkpoint (or resume state) without running any code from the file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist; train one with `toolkit train`."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = _UNSAFE_GLOBAL.search(str(error))
        if found is None and not zipfile.is_zipfile(path):
            raise CheckpointError(
                f"cannot read checkpoint {str(path)!r}: it is not a file written by torch.save. "
                "Is it a checkpoint written by toolkit train?"
            ) from error
        what = f" (it references {found.group(1)})" if found else ""
        raise CheckpointError(
            f"refused to load {str(path)!r}: it holds Python objects other than tensors and "
            f"plain data{what}, and unpickling them could run code. toolkit loads checkpoints "
            "with weights_only=True only; retrain the model with toolkit train."
        ) from error
    except Exception as error:  # torch's unpickler raises many types on junk (KeyError...)
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r}: it is damaged or not a checkpoint "
            f"({type(error).__name__}: {error}). Is it a file written by toolkit train?"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a toolkit file of format {expected_format!r} (found {found!r})."
        )
    version = payload.get("format_version", 0)
    if type(version) is not int or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has format version {version!r}; this toolkit reads "
            f"up to {FORMAT_VERSION}. Upgrade toolkit."
        )
    if expected_format == FORMAT:
        schema.validate(payload, str(path))
    return payload


def _plain(value: Any) -> Any:
    """Arrays, tensors and plain Python data only, so that weights_only=True can read it
    back (torchfile writes tensors as arrays; torch.__version__, for one, is a str subclass
    that weights_only refuses)."""
    if isinstance(value, np.ndarray) or hasattr(value, "detach"):  # before `.item` below
        return value
    if isinstance(value, dict):
        # int keys stay int: an optimizer's state is keyed by parameter index.
        return {(k if type(k) in (int, str) else str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or type(value) in (bool, int, float, str):
        return value
    for plain_type in (bool, int, float, str):
        if isinstance(value, plain_type):
            return plain_type(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint: {value!r}")


def model_from_checkpoint(payload: dict[str, Any]) -> tuple[ModelSpec, torch.nn.Linear]:
    """Rebuild the `nn.Linear` (in eval mode) and its spec from a loaded checkpoint."""
    spec = ModelSpec.from_dict(payload["spec"])
    model = build_model(spec)
    model.load_state_dict(payload["state_dict"])
    return spec, model.eval()
