"""Models for the `--explain` tests: trained by toolkit, with the inference statistics.

`trained` trains a real checkpoint with `toolkit train` (no validation split, so the
training rows are the whole table) and makes sure it holds the checkpoint's "inference"
entry of the inference contract: when toolkit did not store one, it is computed here with
numpy from the same rows and the saved weights (`inference_for`), exactly as the contract
defines it. `exported` then exports it with `--explain`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def make_data(
    rows: int = 60, features: int = 3, targets: int = 1, seed: int = 0, correlated: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Features with different offsets and scales, y = X w + 3 + noise (per target)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features)) * np.linspace(1, 5, features) + np.arange(features)
    if correlated and features > 1:
        x[:, 1] = x[:, 0] + correlated * rng.standard_normal(rows)
    w = rng.standard_normal((features, targets))
    y = x @ w + 3.0 + rng.standard_normal((rows, targets))
    return x, y


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> tuple[list[str], list[str]]:
    """The table as CSV (columns x1.. and y1..); returns (feature names, target names)."""
    features = [f"x{j + 1}" for j in range(x.shape[1])]
    targets = ["y"] if y.shape[1] == 1 else [f"y{t + 1}" for t in range(y.shape[1])]
    header = ",".join(features + targets)
    np.savetxt(
        path, np.column_stack([x, y]), delimiter=",", header=header, comments="", fmt="%.17g"
    )
    return features, targets


def inference_for(
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    target_names: list[str],
    alpha: float = 0.05,
    l2: float = 0.0,
) -> dict[str, Any]:
    """The contract's "inference" entry (the keys --explain reads, and a few more), from the
    rows and the saved weights, in float64 with numpy."""
    n, d = x.shape
    intercept = bias is not None
    mean = x.mean(axis=0)
    if intercept:
        centred = x - mean
        inverse, constant, center = np.linalg.inv(centred.T @ centred), 1.0 / n, mean
    else:
        inverse, constant, center = np.linalg.inv(x.T @ x), 0.0, np.zeros(d)
    df_resid = n - d - int(intercept)
    residuals = y - (x @ weight.T + (bias if intercept else 0.0))
    ssr = (residuals**2).sum(axis=0)
    ridge = l2 > 0
    return {
        "alpha": alpha,
        "n": n,
        "df_model": d,
        "df_resid": df_resid,
        "l2": float(l2),
        "solver": "exact",
        "optimality_gap": None,
        "condition_number": float(np.linalg.cond(np.column_stack([np.ones(n), x]))),
        "feature_mean": mean.tolist(),
        "leverage": None
        if ridge
        else {"constant": constant, "center": center.tolist(), "inverse": inverse.tolist()},
        "notes": [],
        "targets": [
            {
                "name": name,
                "ssr": float(ssr[t]),
                "sigma2": None if ridge else float(ssr[t] / df_resid),
                "rse": None if ridge else float(np.sqrt(ssr[t] / df_resid)),
            }
            for t, name in enumerate(target_names)
        ],
    }


def trained(
    folder: Path,
    x: np.ndarray,
    y: np.ndarray,
    dtype: str = "float64",
    intercept: bool = True,
    l2: float = 0.0,
    alpha: float = 0.05,
    name: str = "model",
) -> Path:
    """Train on (x, y) with toolkit train (every row a training row); the checkpoint, with
    its "inference" entry."""
    import torch

    from toolkit.training import TrainConfig, checkpoint, train

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.csv"
    features, targets = write_csv(data, x, y)
    out = folder / f"{name}.pt"
    config = TrainConfig(
        data=str(data),
        targets=tuple(targets),
        features=tuple(features),
        out=out,
        val_fraction=0.0,
        dtype=dtype,
        intercept=intercept,
        l2=l2,
    )
    train(config)
    payload = checkpoint.load(out)
    if payload.get("inference") is None:
        state = payload["state_dict"]
        weight = state["weight"].double().numpy()
        bias = state["bias"].double().numpy() if "bias" in state else None
        payload["inference"] = inference_for(x, y, weight, bias, targets, alpha, l2)
        payload["state_dict"] = {k: torch.as_tensor(v) for k, v in state.items()}
        checkpoint.save(out, payload)
    return out


def exported(checkpoint_path: Path, **options: Any) -> Path:
    """`toolkit export --explain` of `checkpoint_path`, next to it."""
    from toolkit.export import export_model

    output = checkpoint_path.with_suffix(".onnx")
    export_model(checkpoint_path, output, explain=True, **options)
    return output
