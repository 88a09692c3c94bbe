"""Models for the `--explain` tests: real `toolkit train` checkpoints, exported --explain.

`trained` trains on a table with no validation split, so that the training rows (those the
checkpoint's "inference" statistics describe) are the whole table, the rows statsmodels
fits in the tests. `exported` exports it with `--explain`.
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
    """Train on (x, y) with toolkit train (every row a training row); the checkpoint."""
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
        alpha=alpha,
    )
    train(config)
    payload = checkpoint.load(out)
    assert payload["inference"] is not None, "toolkit train stores the inference statistics"
    return out


def exported(checkpoint_path: Path, **options: Any) -> Path:
    """`toolkit export --explain` of `checkpoint_path`, next to it."""
    from toolkit.export import export_model

    output = checkpoint_path.with_suffix(".onnx")
    export_model(checkpoint_path, output, explain=True, **options)
    return output
