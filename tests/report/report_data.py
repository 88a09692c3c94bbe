"""Shared by the report tests: generated tables, trained checkpoints, statsmodels references.

`fit` trains a real checkpoint with toolkit on a CSV (its "inference" table included)
and keeps the training rows, in file order, for the statsmodels references.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import statsmodels.api as sm
from conftest import write_table_csv

from toolkit.io import holdout_mask
from toolkit.training import TrainConfig, checkpoint, train


@dataclass
class Fit:
    """A trained checkpoint, its data file, and the training rows in file order."""

    checkpoint: Path
    data: Path
    x: np.ndarray  # training rows only (the checkpoint's split applied), file order
    y: np.ndarray  # (n, t)
    features: list[str]
    targets: list[str]
    intercept: bool

    def design(self) -> np.ndarray:
        return sm.add_constant(self.x, has_constant="add") if self.intercept else self.x

    def ols(self, target: int = 0, **fit: Any) -> Any:
        return sm.OLS(self.y[:, target], self.design()).fit(**fit)


def heteroskedastic(rows: int, d: int = 3, t: int = 1, seed: int = 0) -> tuple[Any, Any]:
    """Features on different scales and offsets; noise whose spread grows with |x0|, and
    an AR(1) component so that Durbin-Watson is not 2."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, d)) * np.geomspace(1, 50, d) + np.linspace(0, 20, d)
    w = rng.standard_normal((t, d))
    noise = rng.standard_normal((rows, t)) * (0.5 + np.abs(x[:, :1]))
    for i in range(1, rows):  # autocorrelated errors
        noise[i] += 0.4 * noise[i - 1]
    y = x @ w.T + 2.0 + noise + 0.3 * rng.standard_exponential((rows, t))  # skewed
    return x, y


def fit(
    folder: Path,
    x: np.ndarray,
    y: np.ndarray,
    *,
    intercept: bool = True,
    val_fraction: float = 0.0,
    name: str = "model",
    **config: Any,
) -> Fit:
    """Train toolkit (float64) on the table; the training rows as the file holds them."""
    features = [f"x{j}" for j in range(x.shape[1])]
    targets = ["y"] if y.shape[1] == 1 else [f"y{j}" for j in range(y.shape[1])]
    columns = dict(zip([*features, *targets], np.hstack([x, y]).T, strict=True))
    data = write_table_csv(folder / f"{name}.csv", columns)
    x, y = _read_back(data, features, targets)  # exactly the values the file holds
    out = folder / f"{name}.pt"
    settings = {"dtype": "float64", "seed": 7, **config}
    train(
        TrainConfig(
            data=data,
            targets=tuple(targets),
            intercept=intercept,
            val_fraction=val_fraction,
            out=out,
            **settings,
        )
    )
    held = holdout_mask(np.hstack([x, y]), val_fraction, settings["seed"])
    assert checkpoint.load(out)["inference"] is not None  # what the report builds on
    return Fit(out, data, x[~held], y[~held], features, targets, intercept)


def _read_back(path: Path, features: list[str], targets: list[str]) -> tuple[Any, Any]:
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(path)
    columns = lambda names: np.column_stack([table[n].to_numpy() for n in names])  # noqa: E731
    return columns(features).astype(np.float64), columns(targets).astype(np.float64)
