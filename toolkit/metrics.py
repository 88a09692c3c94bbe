"""Regression metrics (MSE, RMSE, MAE, R^2), computed chunk by chunk in float64."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def regression_metrics(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    weight: np.ndarray,
    bias: np.ndarray,
    target_names: Sequence[str],
) -> dict[str, Any] | None:
    """Metrics of the model `X @ weight.T + bias` on the rows of `chunks`; None for no rows.

    The aggregate MSE and MAE average over every (row, target) cell, RMSE is the square
    root of that MSE, and R^2 averages the targets' R^2 (scikit-learn's "uniform_average").
    R^2 is None (undefined) for a constant target.
    """
    n = 0
    sse = sae = shifted_sum = shifted_squares = shift = None
    for features, targets in chunks:
        features = np.asarray(features, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64).reshape(len(features), -1)
        residual = targets - (features @ weight.T + bias)
        if shift is None:
            # Sums of (y - first row) avoid the cancellation of sum(y^2) - n * mean^2.
            shift = targets[0].copy()
            sse = np.zeros(targets.shape[1])
            sae, shifted_sum, shifted_squares = sse.copy(), sse.copy(), sse.copy()
        sse += np.einsum("ij,ij->j", residual, residual)
        sae += np.abs(residual).sum(axis=0)
        centred = targets - shift
        shifted_sum += centred.sum(axis=0)
        shifted_squares += np.einsum("ij,ij->j", centred, centred)
        n += len(features)
    if not n:
        return None
    total = np.maximum(shifted_squares - shifted_sum**2 / n, 0.0)
    per_target = {}
    for t, name in enumerate(target_names):
        per_target[name] = _summary(sse[t] / n, sae[t] / n, _r2(sse[t], total[t]))
    r2_values = [m["r2"] for m in per_target.values() if m["r2"] is not None]
    result = _summary(
        float(sse.sum() / (n * len(sse))),
        float(sae.sum() / (n * len(sae))),
        float(np.mean(r2_values)) if r2_values else None,
    )
    result["rows"] = n
    if len(target_names) > 1:
        result["per_target"] = per_target
    return result


def _r2(sse: float, total: float) -> float | None:
    return None if total == 0.0 else float(1.0 - sse / total)


def _summary(mse: float, mae: float, r2: float | None) -> dict[str, Any]:
    return {"mse": float(mse), "rmse": math.sqrt(mse), "mae": float(mae), "r2": r2}
