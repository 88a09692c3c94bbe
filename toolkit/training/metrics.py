"""Regression metrics (MSE, RMSE, MAE, R^2), computed chunk by chunk in float64.

The sums behind them (`MetricSums`) add up across chunks, shards and processes, so the
metrics of data split over several processes are exactly those of the whole. With row
weights every sum is weighted and every mean is over the sum of weights, as scikit-learn's
`mean_squared_error`, `mean_absolute_error` and `r2_score` with `sample_weight`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.training.halves import in_halves


@dataclass
class MetricSums:
    """Per-target sums over rows: squared and absolute residuals, and targets minus `shift`.

    Sums of (y - shift) with a shift near the mean avoid the cancellation of
    sum(y^2) - n * mean^2; parts to be added must share the shift. Every sum is in the
    target's `unit` (a power of two, so dividing by it is exact): targets near 1e300
    square without overflow.
    """

    n: int
    shift: np.ndarray
    sse: np.ndarray
    sae: np.ndarray
    shifted_sum: np.ndarray
    shifted_squares: np.ndarray
    unit: np.ndarray = field(default_factory=lambda: np.ones(1))
    weights: float | None = None  # the rows' sum of weights; None: unweighted

    @property
    def weight_sum(self) -> float:
        """What the means divide by: the sum of weights, or the row count."""
        return float(self.n) if self.weights is None else self.weights

    def __add__(self, other: MetricSums) -> MetricSums:
        if not (np.array_equal(self.shift, other.shift) and np.array_equal(self.unit, other.unit)):
            raise ValueError("MetricSums with different shifts or units do not add up")
        return MetricSums(
            self.n + other.n,
            self.shift,
            self.sse + other.sse,
            self.sae + other.sae,
            self.shifted_sum + other.shifted_sum,
            self.shifted_squares + other.shifted_squares,
            self.unit,
            _total_weights(self.weights, other.weights),
        )


def _total_weights(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


def metric_sums(
    chunks: Iterable[tuple[np.ndarray, ...]],
    weight: np.ndarray,
    bias: np.ndarray,
    shift: np.ndarray | None = None,
    dtype: str = "float64",
    unit: np.ndarray | None = None,
) -> MetricSums:
    """The sums for the model `X @ weight.T + bias` on the rows of `chunks`.

    The predictions are computed in `dtype`, as the saved (and exported) model computes
    them: a float32 model's metrics include float32's rounding. `shift` (one value per
    target) defaults to the first row's targets; `unit` (powers of two, one per target)
    to 1.
    """
    return metric_sums_of(chunks, [(weight, bias, dtype)], shift, unit)[0]


Model = tuple[np.ndarray, np.ndarray, str]  # weight (t, d), bias (t,), dtype of the predictions


def metric_sums_of(
    chunks: Iterable[tuple[np.ndarray, ...]],
    models: Sequence[Model],
    shift: np.ndarray | None = None,
    unit: np.ndarray | None = None,
    threads: int = 1,
) -> list[MetricSums]:
    """`metric_sums` for several models in one pass over `chunks` (the rows are read once).

    Chunks of (features, targets, weights) give weighted sums. `threads` (1 or 2): how
    many threads predict (toolkit.training.halves); the caller keeps BLAS to one thread."""
    t = models[0][0].shape[0]
    unit = np.ones(t) if unit is None else np.asarray(unit, dtype=np.float64).reshape(t)
    every = [
        MetricSums(0, np.zeros(t), *(np.zeros(t) for _ in range(4)), unit=unit) for _ in models
    ]
    if shift is not None:
        for sums in every:
            sums.shift = np.asarray(shift, dtype=np.float64).reshape(t)
    first = shift is None
    prepared = [_in_dtype(*model) for model in models]
    for features, targets, *weights in chunks:
        targets = np.asarray(targets, dtype=np.float64).reshape(len(features), -1)
        if not len(features):
            continue
        if first:
            for sums in every:
                sums.shift = targets[0].copy()
            first = False
        w = np.asarray(weights[0], dtype=np.float64).reshape(-1, 1) if weights else None
        predictions = _predictions(features, prepared, threads)
        for sums, predicted in zip(every, predictions, strict=True):
            _add(sums, targets, predicted, w)
    return every


# Rows predicted at a time: the block (and its float32 copy, for a float32 model) stays
# in cache for every model's product (measured 1.5x faster than whole 65536-row chunks).
PREDICT_ROWS = 4096


def _predictions(
    features: Any, prepared: Sequence[tuple[Any, Any, Any]], threads: int = 1
) -> list[np.ndarray]:
    """Each model's `predict` of every row, a cache-sized block at a time, as float64."""
    k, t = len(features), prepared[0][0].shape[1]
    outputs = [np.empty((k, t)) for _ in prepared]

    def rows(slot: int, start: int, stop: int) -> None:  # slot: the halves' own outputs
        for first in range(start, stop, PREDICT_ROWS):
            block = features[first : min(first + PREDICT_ROWS, stop)]
            converted: dict[Any, np.ndarray] = {}  # the block in each dtype, made once
            for out, (weight_t, bias, kind) in zip(outputs, prepared, strict=True):
                if kind not in converted:
                    converted[kind] = np.asarray(block, dtype=kind)
                out[first : first + len(block)] = predict(converted[kind], weight_t, bias, kind)

    if threads > 1 and k >= 2 * PREDICT_ROWS:
        in_halves(rows, 0, k, PREDICT_ROWS)
    else:
        rows(0, 0, k)
    return outputs


def _add(sums: MetricSums, targets: np.ndarray, predicted: np.ndarray, w: Any = None) -> None:
    residual = (targets - predicted) / sums.unit
    centred = (targets - sums.shift) / sums.unit
    if w is None:
        sums.sse += np.einsum("ij,ij->j", residual, residual)
        sums.sae += np.abs(residual).sum(axis=0)
        sums.shifted_sum += centred.sum(axis=0)
        sums.shifted_squares += np.einsum("ij,ij->j", centred, centred)
    else:
        sums.sse += np.einsum("ij,ij->j", residual * w, residual)
        sums.sae += (np.abs(residual) * w).sum(axis=0)
        sums.shifted_sum += (centred * w).sum(axis=0)
        sums.shifted_squares += np.einsum("ij,ij->j", centred * w, centred)
        sums.weights = (sums.weights or 0.0) + float(w.sum())
    sums.n += len(targets)


def _in_dtype(weight: np.ndarray, bias: np.ndarray, dtype: str) -> tuple[Any, Any, Any]:
    kind = np.dtype(dtype)
    return np.asarray(weight, dtype=kind).T, np.asarray(bias, dtype=kind), kind


def predict(features: Any, weight_t: np.ndarray, bias: np.ndarray, kind: Any) -> np.ndarray:
    """`features @ weight_t + bias` computed in `kind`, returned as float64."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow shows in the metrics
        result = np.asarray(features, dtype=kind) @ weight_t + bias
    return result.astype(np.float64, copy=False)


def summarize(sums: MetricSums, target_names: Sequence[str]) -> dict[str, Any] | None:
    """Metrics from their sums; None for no rows.

    The aggregate MSE and MAE average over every (row, target) cell, RMSE is the square
    root of that MSE, and R^2 averages the targets' R^2 (scikit-learn's "uniform_average").
    R^2 is None (undefined) for a constant target.
    """
    n = sums.weight_sum
    if not sums.n or not n:  # no rows, or every weight zero: no mean
        return None
    total = np.maximum(sums.shifted_squares - sums.shifted_sum**2 / n, 0.0)
    unit = sums.unit
    with np.errstate(over="ignore"):  # an MSE beyond float64 (targets near 1e300) is inf
        mse, mae = sums.sse / n * unit * unit, sums.sae / n * unit
    per_target = {}
    for t, name in enumerate(target_names):
        per_target[name] = _summary(mse[t], mae[t], _r2(sums.sse[t], total[t]))
    r2_values = [m["r2"] for m in per_target.values() if m["r2"] is not None]
    result = _summary(
        float(mse.mean()),
        float(mae.mean()),
        float(np.mean(r2_values)) if r2_values else None,
    )
    result["rows"] = sums.n
    if len(target_names) > 1:
        result["per_target"] = per_target
    return result


def regression_metrics(
    chunks: Iterable[tuple[np.ndarray, ...]],
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
