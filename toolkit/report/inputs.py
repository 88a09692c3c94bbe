"""What a report is made of: the checkpoint, and the ONNX file exported from it.

`load_checkpoint` reads the checkpoint through training's own loader (weights_only, schema
checked) and keeps what the report shows: the spec, the weights as saved, the training
record, the inference table and the loss history. `load_model` reads an ONNX file through
the runtime (its safety checks included) for its model card and parity summary, and
checks that it is the export of that checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import card
from toolkit.errors import UsageError


@dataclass
class Fitted:
    """The checkpoint as the report sees it: plain data and float64 weights."""

    path: Path
    feature_names: list[str]
    target_names: list[str]
    intercept: bool
    dtype: str
    weight: np.ndarray  # (t, d) float64, exactly the saved values
    bias: np.ndarray  # (t,) float64; zeros without an intercept
    training: dict[str, Any]  # solver, hyperparameters, seed, device, details
    data: dict[str, Any]  # source, sha256, rows, train_rows, val_rows, val_fraction
    metrics: dict[str, Any]
    optimality_gap: dict[str, Any] | None
    inference: dict[str, Any] | None  # the contract's "inference" (None before it existed)
    history: dict[str, list[float]] | None  # iterative solvers' per-epoch losses
    versions: dict[str, Any]
    created: str | None
    notes: list[str] = field(default_factory=list)
    table: dict[str, Any] | None = None  # a raw table's plan (toolkit/columns.py); None: numeric

    @property
    def seed(self) -> int:
        return int(self.training.get("seed", 0))


@dataclass
class Exported:
    """An ONNX model's card (decoded), its parity summary and whether it matches the checkpoint."""

    path: Path
    card: dict[str, Any]
    parity: dict[str, Any] | None
    weights_match: bool | None  # None: the runtime could not read the weights from the graph
    size_bytes: int
    provider: str


def load_checkpoint(path: str | Path) -> Fitted:
    """The checkpoint at `path`, loaded safely and validated (CheckpointError if not)."""
    from toolkit.training import checkpoint

    payload = checkpoint.load(path)
    spec, state = payload["spec"], payload["state_dict"]
    weight = state["weight"].double().numpy()
    bias = state["bias"].double().numpy() if "bias" in state else np.zeros(weight.shape[0])
    return Fitted(
        path=Path(path),
        feature_names=list(spec["feature_names"]),
        target_names=list(spec["target_names"]),
        intercept=bool(spec["intercept"]),
        dtype=str(spec["dtype"]),
        weight=weight,
        bias=bias,
        training=dict(payload["training"]),
        data=dict(payload["data"]),
        metrics=payload["metrics"],
        optimality_gap=payload.get("optimality_gap"),
        inference=payload.get("inference"),
        history=payload.get("history"),
        versions=dict(payload.get("versions") or {}),
        created=payload.get("created"),
        table=payload.get("table"),
    )


def load_model(path: str | Path, fitted: Fitted) -> Exported:
    """The ONNX model at `path` (ModelLoadError if unsafe or unreadable), checked against
    the checkpoint: other feature or target names are a usage error, other weights a note."""
    from toolkit.runtime import Predictor
    from toolkit.runtime.info import describe

    details = describe(Predictor(path, providers="cpu"))
    ours = (fitted.feature_names, fitted.target_names)
    theirs = (details["feature_names"], details["target_names"])
    if ours != theirs:
        raise UsageError(
            f"--model {str(path)!r} takes features {theirs[0]} and predicts {theirs[1]}, but "
            f"checkpoint {str(fitted.path)!r} has features {ours[0]} and targets {ours[1]}; "
            "pass the ONNX file exported from this checkpoint (toolkit export --checkpoint)."
        )
    decoded = card.decode(details["metadata"])
    parity = decoded.get(card.PARITY)
    match = _weights_match(details, fitted)
    if match is False:
        fitted.notes.append(
            f"warning: the weights in {str(path)!r} differ from those of {str(fitted.path)!r}: "
            "it was exported from another checkpoint (or the checkpoint was retrained since)."
        )
    return Exported(
        path=Path(path),
        card=decoded,
        parity=parity if isinstance(parity, dict) else None,
        weights_match=match,
        size_bytes=int(details["size_bytes"]),
        provider=str(details["provider"]),
    )


def _weights_match(details: dict[str, Any], fitted: Fitted) -> bool | None:
    """Whether the graph holds the checkpoint's weights bit for bit (as export guarantees)."""
    if details.get("weight") is None:
        return None
    weight = np.asarray(details["weight"], dtype=np.float64)
    bias = details.get("bias")
    bias = np.zeros(len(weight)) if bias is None else np.asarray(bias, dtype=np.float64)
    return bool(
        weight.shape == fitted.weight.shape
        and np.array_equal(weight, fitted.weight)
        and np.array_equal(bias, fitted.bias)
    )
