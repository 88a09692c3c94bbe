"""Training from a stream of batches (the estimator's `partial_fit`): the exact solver, fed
batch by batch, in memory bounded by the number of columns, not of rows.

1. Each batch's sufficient statistics (`moments.Accumulator`: mean and scatter matrix of
   [features | targets]) are merged into those of the batches before it (Chan's update,
   as processes' are merged under torchrun), so the statistics of a stream equal those of
   one pass over the concatenation, up to summation order. The state kept between
   batches (`StreamState`) is plain numpy data: O((d + t)^2) values plus the first
   PARITY_SAMPLE_ROWS rows for the export's parity gate.
2. The model is solved from the statistics by the exact solver (`exact.solve`), as
   `toolkit train --solver exact` solves it, and rounded to the model's dtype as saved.
   What needs the rows again is not done: the refinement passes (a streamed solution
   keeps about 16 - log10(condition number) of float64's digits) and the QR fallback (an
   ill-conditioned problem is refused, saying to fit the whole data or add a ridge).
3. The training metrics come from the statistics too: MSE and R^2 exactly as algebra
   allows (R^2 to about 1e-15 absolute; a tiny MSE loses relative digits to cancellation,
   about eps * variance / MSE), and no MAE, which the statistics cannot give.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.training import exact
from toolkit.training.model import ModelSpec
from toolkit.training.readpass import check_enough_rows
from toolkit.training.report import TrainResult, checkpoint_payload
from toolkit.training.rows import PARITY_SAMPLE_ROWS
from toolkit.training.train import as_saved

STREAM_SOURCE = "<partial_fit stream>"


@dataclass
class StreamState:
    """What a stream keeps between batches: small, plain and picklable (no tensors)."""

    moments: dict[str, Any]  # exact.Moments.to_plain() of every row so far
    sample: np.ndarray  # (k, d) float64: the first rows' features, for the parity gate
    batches: int

    @property
    def n_rows(self) -> int:
        return int(self.moments["n"])


def add_batch(
    state: StreamState | None,
    features: np.ndarray,
    targets: np.ndarray,
    device: Any = "cpu",
    weights: np.ndarray | None = None,
) -> StreamState:
    """The state after one more batch: features (k, d), targets (k, t), any float dtype."""
    accumulator = exact.Accumulator(device)
    with warnings.catch_warnings():  # read-only input (a pandas view) is only read here
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        accumulator.add(features, targets, weights)
    prior = None if state is None else exact.Moments.from_plain(state.moments)
    merged = exact.merge([prior, accumulator.moments()])
    if merged is None:  # an empty first batch
        raise ValueError("a stream's first batch needs at least one row")
    sample = np.empty((0, features.shape[1])) if state is None else state.sample
    room = PARITY_SAMPLE_ROWS - len(sample)
    if room > 0:
        sample = np.concatenate([sample, np.asarray(features[:room], dtype=np.float64)])
    return StreamState(merged.to_plain(), sample, (0 if state is None else state.batches) + 1)


def solve_stream(
    state: StreamState, spec: ModelSpec, l2: float, device: Any = "cpu"
) -> TrainResult:
    """The exact solution of the rows streamed so far, as saved in `spec.dtype`.

    Raises DataError for too few rows (`check_enough_rows`), CollinearityError for a
    constant or collinear feature, and DataError for an ill-conditioned problem.
    """
    moments = exact.Moments.from_plain(state.moments)
    check_enough_rows(STREAM_SOURCE, spec, moments.n)
    fit = exact.solve(moments, spec.n_features, spec.feature_names, spec.intercept, l2)
    weight, bias = as_saved(spec, fit.weight, fit.bias)
    details = {"method": fit.method, "condition_number": fit.condition_number}
    data = {
        "source": f"{STREAM_SOURCE} ({state.batches} batch{'es' if state.batches > 1 else ''})",
        "sha256": "",  # no file behind a stream
        "rows": moments.n,
        "train_rows": moments.n,
        "val_rows": 0,
        "val_fraction": 0.0,
        "processes": 1,
    }
    return TrainResult(
        spec=spec,
        weight=weight,
        bias=bias,
        solver="exact",
        device=str(device),
        checkpoint=Path(),
        hyperparameters={"l2": l2},
        metrics={"train": moment_metrics(state.moments, weight, bias, spec), "val": None},
        details={**details, "refinement_passes": 0},
        data=data,
        moments=moments,
    )


def moment_metrics(
    plain: dict[str, Any], weight: np.ndarray, bias: np.ndarray, spec: ModelSpec
) -> dict[str, Any]:
    """MSE, RMSE and R^2 of `X @ weight.T + bias` from the statistics alone; MAE is None.

    For target k, the residual is v . [x | y] - b_k with v = [-weight_k | e_k]: its sum of
    squares is v' S v (S the centred scatter matrix) plus n times its mean squared.
    """
    n, d = int(plain["n"]), spec.n_features
    mass = n if plain.get("weights") is None else plain["weights"]  # weighted rows: sum(w)
    mean, unit = np.asarray(plain["mean"]), np.asarray(plain["unit"])
    scatter = np.asarray(plain["scatter"])
    per_target: dict[str, Any] = {}
    with np.errstate(over="ignore", invalid="ignore"):
        for k, name in enumerate(spec.target_names):
            v = np.zeros(len(mean))
            v[:d], v[d + k] = -weight[k], 1.0
            scaled = v * unit  # the scatter is in units: S_raw = diag(unit) S diag(unit)
            offset = mean[d + k] - weight[k] @ mean[:d] - bias[k]
            sse = max(float(scaled @ scatter @ scaled), 0.0) + mass * float(offset) ** 2
            total = float(scatter[d + k, d + k]) * float(unit[d + k]) ** 2
            r2 = None if total == 0.0 else 1.0 - sse / total
            mse = sse / mass
            per_target[name] = {"mse": mse, "rmse": math.sqrt(mse), "mae": None, "r2": r2}
    mse = float(np.mean([m["mse"] for m in per_target.values()]))
    r2s = [m["r2"] for m in per_target.values() if m["r2"] is not None]
    result: dict[str, Any] = {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": None,
        "r2": float(np.mean(r2s)) if r2s else None,
        "rows": n,
    }
    if spec.n_targets > 1:
        result["per_target"] = per_target
    return result


def stream_payload(result: TrainResult, state: StreamState, seed: int) -> dict[str, Any]:
    """The checkpoint of a streamed model, as `toolkit train` would write it."""
    return checkpoint_payload(result, seed, state.sample)
