"""The model: a plain `nn.Linear`, described by a `ModelSpec` that the checkpoint stores."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.defaults import DTYPES as DTYPES  # re-exported: the model's dtypes
from toolkit.equations import equations as format_equations

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild the model: input and output names, bias, precision."""

    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    intercept: bool = True
    dtype: str = "float32"

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_targets(self) -> int:
        return len(self.target_names)

    @property
    def n_parameters(self) -> int:
        """Free parameters per target: one weight per feature, plus the intercept."""
        return self.n_features + int(self.intercept)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["feature_names"] = list(self.feature_names)
        data["target_names"] = list(self.target_names)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(
            feature_names=tuple(data["feature_names"]),
            target_names=tuple(data["target_names"]),
            intercept=bool(data["intercept"]),
            dtype=str(data["dtype"]),
        )


def build_model(
    spec: ModelSpec,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    device: torch.device | str = "cpu",
) -> torch.nn.Linear:
    """An `nn.Linear(n_features, n_targets)` in the spec's dtype, optionally holding weights."""
    import torch

    dtype = getattr(torch, spec.dtype)
    model = torch.nn.Linear(
        spec.n_features, spec.n_targets, bias=spec.intercept, dtype=dtype, device=device
    )
    with torch.no_grad():
        if weight is not None:
            model.weight.copy_(torch.as_tensor(np.asarray(weight).reshape(model.weight.shape)))
        if bias is not None and model.bias is not None:
            model.bias.copy_(torch.as_tensor(np.asarray(bias).reshape(model.bias.shape)))
    return model


def state_dict(spec: ModelSpec, weight: np.ndarray, bias: np.ndarray) -> dict[str, np.ndarray]:
    """What `build_model(spec, weight, bias).state_dict()` holds, as numpy arrays in the
    spec's dtype (the checkpoint stores these; no torch needed to make them)."""
    shape = (spec.n_targets, spec.n_features)
    arrays = {"weight": np.asarray(weight, dtype=np.float64).reshape(shape).astype(spec.dtype)}
    if spec.intercept:
        arrays["bias"] = np.asarray(bias, dtype=np.float64).reshape(-1).astype(spec.dtype)
    return arrays


def round_to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """The float64 values the saved model really holds once stored in `dtype`."""
    with np.errstate(over="ignore"):  # values beyond the dtype become inf; callers check
        return np.asarray(values, dtype=np.float64).astype(dtype).astype(np.float64)


def equations(
    spec: ModelSpec, weight: np.ndarray, bias: np.ndarray, max_terms: int = 12
) -> list[str]:
    """One human-readable line per target: `y = 1.0000*x1 + 1.0000*x2 - 1.0000`."""
    return format_equations(
        spec.feature_names, spec.target_names, weight, bias if spec.intercept else None, max_terms
    )
