"""Regression metrics (MSE, RMSE, MAE, R^2), computed chunk by chunk in float64.

The sums behind them (`MetricSums`) add up across chunks, shards and processes, so the
metrics of data split over several processes are exactly those of the whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class MetricSums:
    """Per-target sums over rows: squared and absolute residuals, and targets minus `shift`.

    Sums of (y - shift) with a shift near the mean avoid the cancellation of
    sum(y^2) - n * mean^2; parts to be added must share the shift.
    """

    n: int
    shift: np.ndarray
    sse: np.ndarray
    sae: np.ndarray
    shifted_sum: np.ndarray
    shifted_squares: np.ndarray

    def __add__(self, other: MetricSums) -> MetricSums:
        if not np.array_equal(self.shift, other.shift):
            raise ValueError("MetricSums with different shifts do not add up")
        return MetricSums(
            self.n + other.n,
            self.shift,
            self.sse + other.sse,
            self.sae + other.sae,
            self.shifted_sum + other.shifted_sum,
            self.shifted_squares + other.shifted_squares,
        )


def metric_sums(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    weight: np.ndarray,
    bias: np.ndarray,
    shift: np.ndarray | None = None,
) -> MetricSums:
    """The sums for the model `X @ weight.T + bias` on the rows of `chunks`.

    `shift` (one value per target) defaults to the first row's targets.
    """
    t = weight.shape[0]
    sums = MetricSums(0, np.zeros(t), *(np.zeros(t) for _ in range(4)))
    if shift is not None:
        sums.shift = np.asarray(shift, dtype=np.float64).reshape(t)
    first = shift is None
    for features, targets in chunks:
        features = np.asarray(features, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64).reshape(len(features), -1)
        if not len(features):
            continue
        if first:
            sums.shift, first = targets[0].copy(), False
        residual = targets - (features @ weight.T + bias)
        sums.sse += np.einsum("ij,ij->j", residual, residual)
        sums.sae += np.abs(residual).sum(axis=0)
        centred = targets - sums.shift
        sums.shifted_sum += centred.sum(axis=0)
        sums.shifted_squares += np.einsum("ij,ij->j", centred, centred)
        sums.n += len(features)
    return sums


def summarize(sums: MetricSums, target_names: Sequence[str]) -> dict[str, Any] | None:
    """Metrics from their sums; None for no rows.

    The aggregate MSE and MAE average over every (row, target) cell, RMSE is the square
    root of that MSE, and R^2 averages the targets' R^2 (scikit-learn's "uniform_average").
    R^2 is None (undefined) for a constant target.
    """
    n = sums.n
    if not n:
        return None
    total = np.maximum(sums.shifted_squares - sums.shifted_sum**2 / n, 0.0)
    per_target = {}
    for t, name in enumerate(target_names):
        per_target[name] = _summary(sums.sse[t] / n, sums.sae[t] / n, _r2(sums.sse[t], total[t]))
    r2_values = [m["r2"] for m in per_target.values() if m["r2"] is not None]
    result = _summary(
        float(sums.sse.sum() / (n * len(sums.sse))),
        float(sums.sae.sum() / (n * len(sums.sae))),
        float(np.mean(r2_values)) if r2_values else None,
    )
    result["rows"] = n
    if len(target_names) > 1:
        result["per_target"] = per_target
    return result


def regression_metrics(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    weight: np.ndarray,
    bias: np.ndarray,
    target_names: Sequence[str],
) -> dict[str, Any] | None:
    """Metrics of the model `X @ weight.T + bias` on the rows of `chunks`; None for no rows."""
    return summarize(metric_sums(chunks, weight, bias), target_names)


def _r2(sse: float, total: float) -> float | None:
    return None if total == 0.0 else float(1.0 - sse / total)


def _summary(mse: float, mae: float, r2: float | None) -> dict[str, Any]:
    return {"mse": float(mse), "rmse": math.sqrt(mse), "mae": float(mae), "r2": r2}
