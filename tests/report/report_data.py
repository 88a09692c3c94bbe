"""Shared by the report tests: generated tables, trained checkpoints, statsmodels references.

`fit` trains a real checkpoint with toolkit on a CSV. If the checkpoint carries no
"inference" table (a toolkit without the inference module), `fit` adds the one the
contract describes, computed here with statsmodels on the same training rows, so that
the report has its leverage to work with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import statsmodels.api as sm
import torch
from conftest import write_table_csv
from statsmodels.stats.outliers_influence import variance_inflation_factor

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
    """Train toolkit (float64) on the table and make sure the checkpoint has inference."""
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
    result = Fit(out, data, x[~held], y[~held], features, targets, intercept)
    add_inference(result)
    return result


def _read_back(path: Path, features: list[str], targets: list[str]) -> tuple[Any, Any]:
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(path)
    columns = lambda names: np.column_stack([table[n].to_numpy() for n in names])  # noqa: E731
    return columns(features).astype(np.float64), columns(targets).astype(np.float64)


def add_inference(result: Fit, alpha: float = 0.05) -> None:
    """Put the contract's "inference" dict into the checkpoint, unless it has one."""
    payload = torch.load(result.checkpoint, weights_only=True)
    if payload.get("inference") is not None:
        return
    payload["inference"] = inference_table(result, alpha, payload["training"]["solver"])
    torch.save(payload, result.checkpoint)
    checkpoint.load(result.checkpoint)  # still a valid checkpoint


def inference_table(result: Fit, alpha: float, solver: str) -> dict[str, Any]:
    """The contract's dict, from statsmodels on the training rows."""
    x, n, d = result.x, len(result.x), result.x.shape[1]
    design = result.design()
    mean = x.mean(axis=0)
    centred = x - mean if result.intercept else x
    targets = [
        _target_table(result.ols(j), name, result, alpha) for j, name in enumerate(result.targets)
    ]
    first = result.ols(0)
    return {
        "alpha": alpha,
        "n": n,
        "df_model": int(first.df_model),
        "df_resid": int(first.df_resid),
        "l2": 0.0,
        "solver": solver,
        "optimality_gap": None,
        "condition_number": float(np.linalg.cond(design)),
        "feature_mean": mean.tolist(),
        "leverage": {
            "constant": 1.0 / n if result.intercept else 0.0,
            "center": (mean if result.intercept else np.zeros(d)).tolist(),
            "inverse": np.linalg.inv(centred.T @ centred).tolist(),
        },
        "notes": [],
        "targets": targets,
    }


def _target_table(ols: Any, name: str, result: Fit, alpha: float) -> dict[str, Any]:
    design = result.design()
    terms = (["(intercept)"] if result.intercept else []) + result.features
    lower, upper = ols.conf_int(alpha).T
    vif = [
        None if term == "(intercept)" else float(variance_inflation_factor(design, i))
        for i, term in enumerate(terms)
    ]
    coefficients = [
        {
            "term": term,
            "estimate": float(ols.params[i]),
            "stderr": float(ols.bse[i]),
            "t": float(ols.tvalues[i]),
            "p": float(ols.pvalues[i]),
            "lower": float(lower[i]),
            "upper": float(upper[i]),
            "vif": vif[i],
        }
        for i, term in enumerate(terms)
    ]
    return {
        "name": name,
        "ssr": float(ols.ssr),
        "sigma2": float(ols.mse_resid),
        "rse": float(np.sqrt(ols.mse_resid)),
        "r2": float(ols.rsquared),
        "r2_adj": float(ols.rsquared_adj),
        "f": float(ols.fvalue),
        "f_pvalue": float(ols.f_pvalue),
        "loglik": float(ols.llf),
        "aic": float(ols.aic),
        "bic": float(ols.bic),
        "coefficients": coefficients,
    }
