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

Raw tables: a DataFrame (pandas or polars) or pyarrow Table whose features are not all
numbers, or any input fitted with table options (`categorical`, `missing` other than
'error', `missing_indicator`, `na_values`, `max_levels`), goes to `toolkit.train` as an
Arrow table: training scans it, builds the table plan (toolkit/columns.py) and fits the
encoded columns, as `toolkit train` does a file. NaN in a float column is then a
missing value, as in scikit-learn's imputers (pandas' and numpy's NaN become Arrow
nulls). `predict` encodes its input with the encoder training used (`toolkit.io.encode`).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils.validation import check_array, check_consistent_length, validate_data

from toolkit.defaults import MAX_LEVELS, MISSING

ARROW_MODULES = ("pyarrow", "polars")  # inputs read as Arrow tables
# BLAS threads while `fit` reads >= BLAS_LIMIT_VALUES values (None: no limit): one lets the
# reader's thread and the summing share 2 cores unhindered (1,000,000 x 100: scripts/bench_api).
FIT_BLAS_THREADS: int | None = 1
BLAS_LIMIT_VALUES = 1_000_000


def blas_limit(source: Any) -> contextlib.AbstractContextManager[Any]:
    """FIT_BLAS_THREADS BLAS threads while `toolkit.train` reads `source`, if it is large."""
    if FIT_BLAS_THREADS is None or source.n_rows * len(source.columns) < BLAS_LIMIT_VALUES:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    return threadpool_limits(FIT_BLAS_THREADS, user_api="blas")


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

    if is_table(estimator, X):
        return _arrow_data(estimator, X, y, reset, sample_weight, as_arrow(X))
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
    estimator: Any, X: Any, y: Any, reset: bool, sample_weight: Any = None, table: Any = None
) -> TrainingData:
    """`X` (or `table`, X as Arrow already) as an Arrow source: toolkit's reader checks it."""
    import pyarrow as pa

    from toolkit.io.tables import as_table, open_table

    validate_data(estimator, X, y, reset=reset, skip_check_array=True)  # names, width, y given
    table = as_table(X) if table is None else table
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
    source = open_table(table, targets, features, weight=weight, options=_options(estimator))
    return TrainingData(source, dtype, values.ndim)


def _options(estimator: Any) -> Any:
    """The io tier's table options from the estimator's table parameters."""
    from toolkit.io.tables_plan import TableOptions

    options = table_options(estimator)
    indicator = options.pop("missing_indicator")
    return TableOptions(**options, indicator=indicator)


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


def stream_spec(estimator: Any) -> Any:
    """The ModelSpec of the model `partial_fit` streams into."""
    from toolkit.training.model import ModelSpec

    names = tuple(feature_names(estimator))
    targets = tuple(estimator._stream_names)
    return ModelSpec(names, targets, estimator.fit_intercept, estimator._stream_dtype)


def solved_stream(estimator: Any, device: Any) -> Any:
    """The stream's solution (a TrainResult); None with a warning while the rows so far
    cannot determine the model (too few, a feature constant or collinear so far)."""
    from toolkit.errors import CollinearityError
    from toolkit.training import stream

    spec, n = stream_spec(estimator), estimator._stream.n_rows
    problem = None
    if n < spec.n_parameters:
        problem = f"{n} rows so far cannot determine {spec.n_parameters} parameters per target"
    else:
        try:
            return stream.solve_stream(estimator._stream, spec, estimator.l2, device)
        except CollinearityError as error:
            problem = str(error)
    warnings.warn(
        f"partial_fit kept the batch; no model yet: {problem}. Stream more rows.",
        UserWarning,
        stacklevel=3,
    )
    return None


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


# ---------------------------------------------------------------------------------------
# Raw tables

# The dtypes of pandas columns that training encodes (the rest must be numbers).
_PANDAS_TABLE_KINDS = "OSUb"


def table_options(estimator: Any) -> dict[str, Any]:
    """The estimator's table parameters as `toolkit.train`'s keywords."""
    return {
        "categorical": tuple(estimator.categorical or ()),
        "missing": estimator.missing,
        "missing_indicator": bool(estimator.missing_indicator),
        "na_values": tuple(estimator.na_values or ()),
        "max_levels": int(estimator.max_levels),
    }


def with_options(estimator: Any) -> bool:
    """Whether the table parameters differ from their defaults."""
    return bool(
        estimator.categorical
        or estimator.missing != MISSING
        or estimator.missing_indicator
        or estimator.na_values
        or estimator.max_levels != MAX_LEVELS
    )


def is_table(estimator: Any, X: Any) -> bool:
    """Whether `fit` reads `X` as a raw table (see the module's docstring)."""
    if with_options(estimator):
        return True
    module = type(X).__module__.split(".")[0]
    if module == "pandas" and hasattr(X, "dtypes"):
        return any(_pandas_table_kind(dtype) for dtype in X.dtypes)
    if module in ("pyarrow", "polars"):
        import pyarrow as pa

        from toolkit.io.tables import as_table

        schema = as_table(X).schema
        return not all(pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in schema)
    return False


def _pandas_table_kind(dtype: Any) -> bool:
    return str(dtype) == "category" or getattr(dtype, "kind", "O") in _PANDAS_TABLE_KINDS


def as_arrow(X: Any) -> Any:
    """`X` as a pyarrow Table whose float NaN are nulls (missing values). Arrays are
    checked as scikit-learn checks them (numbers, 2-D, not sparse; NaN allowed, infinity
    not) and get the names x0, x1, ... as scikit-learn's feature names would be."""
    import pyarrow as pa

    from toolkit.io.tables import as_table

    if type(X).__module__.split(".")[0] not in ("pandas", *ARROW_MODULES):
        array = check_array(X, dtype="numeric", ensure_all_finite="allow-nan", input_name="X")
        columns = {f"x{j}": pa.array(array[:, j], from_pandas=True) for j in range(array.shape[1])}
        return pa.table(columns)
    table = as_table(X)
    arrays = [_nan_as_null(table.column(j)) for j in range(table.num_columns)]
    return pa.table(arrays, names=[str(name) for name in table.column_names])


def _nan_as_null(column: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_floating(column.type):
        return column
    return pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)


def refuse_tables_in_partial_fit(estimator: Any, X: Any) -> None:
    """partial_fit streams numeric batches: a table's levels and fills need all its rows."""
    if is_table(estimator, X) or estimator.__dict__.get("_table") is not None:
        raise ValueError(
            "partial_fit streams numeric batches; a raw table (categorical columns or "
            "missing values to fill) needs its levels and fills from every row first. "
            "Use fit on the whole table."
        )


def encoded_rows(estimator: Any, X: Any) -> np.ndarray:
    """`X`'s raw columns encoded by the fitted plan: the float64 rows `coef_` multiplies.

    A missing value the plan cannot fill, or an unknown level, is a ValueError naming it.
    """
    from toolkit.io.encode import encode

    plan = estimator._table
    table = as_arrow(X)  # arrays checked as scikit-learn checks them, first
    validate_data(estimator, X, reset=False, skip_check_array=True)  # names and width
    names = [str(name) for name in table.column_names]
    absent = [name for name in plan.raw_names if name not in names]
    if absent:
        raise ValueError(
            f"X lacks column(s) {', '.join(map(repr, absent))} that LinearRegressor was "
            f"fitted with; expected the columns {', '.join(map(repr, plan.raw_names))}."
        )
    encoded = encode(table, plan)
    for j, column in enumerate(plan.columns):
        rows = np.flatnonzero(encoded.missing[:, j])
        if len(rows) and column.fill is None:
            raise ValueError(
                f"X has {len(rows)} missing value(s) in column {column.name!r} (first at row "
                f"{int(rows[0])}), which LinearRegressor cannot fill: it was fitted with "
                f"missing={plan.missing!r}. Fill them, or fit with missing='mean' or 'median'."
            )
    unknown = np.flatnonzero(encoded.unknown)
    if len(unknown):
        raise ValueError(
            f"X holds {int(encoded.unknown.sum())} categorical value(s) unseen in fit (first "
            f"at row {int(unknown[0])}); LinearRegressor knows only the levels it was "
            "fitted with (`encoded_feature_names_`)."
        )
    return encoded.block


def set_model(estimator: Any, result: Any, y_ndim: int, dtype: str) -> None:
    """The fitted attributes of a TrainResult, and the transposed weights `predict`
    multiplies by."""
    weight = np.asarray(result.weight, dtype=dtype)  # exact: the saved model's values
    bias = np.asarray(result.bias, dtype=dtype)
    estimator._weights_t = np.ascontiguousarray(weight.T)
    estimator._bias = bias
    estimator._y_ndim = y_ndim
    estimator._stream_names = list(result.spec.target_names)
    estimator._stream_dtype = dtype
    estimator.encoded_feature_names_ = np.asarray(result.spec.feature_names, dtype=object)
    estimator.coef_ = weight[0] if y_ndim == 1 else weight
    estimator.intercept_ = bias[0] if y_ndim == 1 else bias
