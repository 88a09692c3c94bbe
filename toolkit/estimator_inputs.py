"""What `toolkit.LinearRegressor` makes of its inputs before `toolkit.train` sees them.

- numpy arrays, lists and pandas DataFrames go through scikit-learn's `validate_data`
  (the messages scikit-learn users know; a float32 or float64 array is not copied, nor is
  a pandas DataFrame of one float dtype) and become an in-memory source of numpy arrays.
- pyarrow Tables and polars DataFrames stay Arrow data (polars hands its columns over
  without a copy): scikit-learn checks their names and width only, and toolkit's reader
  converts and checks them chunk by chunk, as it reads a Parquet file.

Either way the training path copies one chunk at a time into float64, never the whole
input up front. Feature names come from the columns (`feature_names_in_`), else `x0`,
`x1`, ...; target names from a named y (a pandas Series or DataFrame), else `y` or `y0`,
`y1`, ..., made distinct from the features'.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils.validation import check_array, check_consistent_length, validate_data

ARROW_MODULES = ("pyarrow", "polars")  # inputs read as Arrow tables


@dataclass
class TrainingData:
    """`fit`'s input as a toolkit data source, and what the model's shape and dtype follow."""

    source: Any  # a toolkit.io.tables.MemorySource
    dtype: str  # "float32" when every feature is float32, else "float64"
    y_ndim: int  # 1: coef_ is (n_features,), predict returns (n_samples,)


def training_data(
    estimator: Any, X: Any, y: Any, *, reset: bool, sample_weight: Any = None
) -> TrainingData:
    """`X` and `y` (and the rows' weights) checked and wrapped as a source for `toolkit.train`."""
    from toolkit.io.tables import open_arrays

    if type(X).__module__.split(".")[0] in ARROW_MODULES:
        return _arrow_data(estimator, X, y, reset, sample_weight)
    named_y = y
    X, y = validate_data(
        estimator, X, y, reset=reset, dtype=[np.float64, np.float32], y_numeric=True,
        multi_output=True,
    )  # fmt: skip
    y2d = y.reshape(len(y), -1)
    features = feature_names(estimator)
    targets = target_names(named_y, y2d.shape[1], features)
    check_enough_samples(estimator, len(X))
    dtype = "float32" if X.dtype == np.float32 else "float64"
    weights = sample_weights(sample_weight, X)
    source = open_arrays(X, y2d, features, targets, checked=True, weights=weights)
    return TrainingData(source, dtype, y.ndim)


def sample_weights(sample_weight: Any, X: Any) -> np.ndarray | None:
    """scikit-learn's checks of `sample_weight` (shape, finite, >= 0); None stays None."""
    if sample_weight is None:
        return None
    from sklearn.utils.validation import _check_sample_weight

    weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
    if not weights.sum() > 0:
        raise ValueError("every sample_weight is 0; expected at least one > 0 (nothing to fit).")
    return weights


def _arrow_data(
    estimator: Any, X: Any, y: Any, reset: bool, sample_weight: Any = None
) -> TrainingData:
    import pyarrow as pa

    from toolkit.io.tables import as_table, open_table

    validate_data(estimator, X, y, reset=reset, skip_check_array=True)  # names, width, y given
    table = as_table(X)
    values = check_array(y, ensure_2d=False, dtype="numeric", input_name="y")
    check_consistent_length(table, values)
    y2d = values.reshape(len(values), -1)
    features = [str(name) for name in table.column_names]
    targets = target_names(y, y2d.shape[1], features)
    check_enough_samples(estimator, table.num_rows)
    for j, name in enumerate(targets):
        table = table.append_column(name, pa.array(y2d[:, j]))
    dtype = "float32"
    if not all(pa.types.is_float32(table.schema.field(name).type) for name in features):
        dtype = "float64"
    weights = sample_weights(sample_weight, np.empty((table.num_rows, 0)))
    weight = None
    if weights is not None:  # a column named unlike any feature or target
        weight = "__sample_weight__" + "_" * max(len(c) for c in table.column_names)
        table = table.append_column(weight, pa.array(weights))
    source = open_table(table, targets, features, weight=weight)
    return TrainingData(source, dtype, values.ndim)


def batch(estimator: Any, X: Any, y: Any, *, reset: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """A `partial_fit` batch: features (n, d), targets (n, t) and y's number of dimensions."""
    X, y = validate_data(
        estimator, X, y, reset=reset, dtype=[np.float64, np.float32], y_numeric=True,
        multi_output=True,
    )  # fmt: skip
    return X, y.reshape(len(y), -1), y.ndim


def check_enough_samples(estimator: Any, n_samples: int) -> None:
    """Refuse fewer samples than parameters per target: the least squares would not be unique.

    (scikit-learn's LinearRegression returns the minimum-norm solution then; toolkit, whose
    exact solver promises the unique optimum, refuses, as `toolkit train` does.)
    """
    d = estimator.n_features_in_
    parameters = d + int(bool(estimator.fit_intercept))
    if n_samples >= parameters:
        return
    raise ValueError(
        f"{n_samples} sample{'s' if n_samples != 1 else ''} cannot determine {parameters} "
        f"parameters per target ({d} weight{'s' if d != 1 else ''}"
        f"{' and an intercept' if estimator.fit_intercept else ''}); expected at least "
        f"{parameters} samples."
    )


def train_options(estimator: Any) -> dict[str, Any]:
    """The estimator's parameters as `toolkit.train`'s keywords (`fit_intercept` is `intercept`)."""
    names = ("solver", "epochs", "lr", "batch_size", "patience", "device", "seed", "chunk_rows")
    options = {name: getattr(estimator, name) for name in names}
    return {**options, "l2": float(estimator.l2), "intercept": bool(estimator.fit_intercept)}


def warn(notes: list[str]) -> None:
    """Training's warnings (its notes that start with "warning: ") as Python warnings."""
    for note in notes:
        if note.startswith("warning: "):
            warnings.warn(note.removeprefix("warning: "), UserWarning, stacklevel=3)


def default_names(estimator: Any) -> list[str]:
    return [f"x{j}" for j in range(estimator.n_features_in_)]


def feature_names(estimator: Any) -> list[str]:
    """`feature_names_in_` as set by validate_data, else x0, x1, ..."""
    names = estimator.__dict__.get("feature_names_in_")
    return [str(name) for name in names] if names is not None else default_names(estimator)


def target_names(y: Any, n_targets: int, features: list[str]) -> list[str]:
    """The targets' names: y's own (a named pandas or polars Series, a DataFrame's
    columns) when they are distinct strings, else y or y0, y1, ..., never a feature's."""
    own = getattr(y, "columns", None)
    if own is None:
        name = getattr(y, "name", None)
        own = None if name is None else [name]
    raw = list(own) if own is not None else []
    usable = (
        len(raw) == n_targets
        and all(isinstance(n, str) and n.strip() for n in raw)
        and len(set(raw) | set(features)) == len(raw) + len(features)
    )
    names = [str(n) for n in raw]
    if usable:
        return names
    stem = "y"
    while True:
        names = [stem] if n_targets == 1 else [f"{stem}{k}" for k in range(n_targets)]
        if not set(names) & set(features):
            return names
        stem = "_" + stem


def fitted_stream(moments: dict[str, Any] | None) -> Any:
    """The stream `partial_fit` continues after `fit`: its statistics; the parity sample is
    read from the checkpoint when first needed (`with_sample`)."""
    from toolkit.training.stream import StreamState

    return None if moments is None else StreamState(moments, None, 1)  # type: ignore[arg-type]


def with_sample(state: Any, checkpoint: bytes | None) -> Any:
    """`state` with the fitted checkpoint's parity sample, if it has none yet."""
    if state is None or state.sample is not None or checkpoint is None:
        return state
    import io

    import torch

    payload = torch.load(io.BytesIO(checkpoint), map_location="cpu", weights_only=True)
    state.sample = payload["parity_sample"].numpy()
    return state
