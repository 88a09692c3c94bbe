"""`toolkit.LinearRegressor`: toolkit's training, export and runtime as a scikit-learn estimator.

Nothing here fits a model: `fit` hands the data to `toolkit.train` (the run `toolkit
train` makes) as an in-memory source (`toolkit.io.tables`: numpy arrays, or a pyarrow
table for pyarrow and polars input, read chunk by chunk without a copy up front);
`partial_fit` streams batches into the exact solver's sufficient statistics
(`toolkit.training.stream`); `export` writes the checkpoint and calls `toolkit.export`,
the parity gate and the model card included. `predict` is numpy on `coef_`, computed in
the model's dtype as the exported ONNX model computes it (ONNX Runtime for one row
costs more than the product itself).

This module imports scikit-learn and numpy; torch, pyarrow and onnx are imported when a
method needs them, so `import toolkit` and this module stay light.
"""

from __future__ import annotations

import tempfile
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from toolkit import estimator_inputs as inputs
from toolkit.defaults import (
    CHUNK_ROWS,
    DEVICE,
    DTYPES,
    L2,
    MAX_LEVELS,
    MISSING,
    MISSING_POLICIES,
    OPSET,
    SEED,
    SEED_MAX,
    SEED_MIN,
    SOLVER,
    SOLVERS,
)
from toolkit.errors import UsageError

if TYPE_CHECKING:
    from toolkit.export import ExportResult

__all__ = ["LinearRegressor"]


class LinearRegressor(RegressorMixin, BaseEstimator):
    """Least-squares linear regression, fitted by toolkit and exported to ONNX.

    `fit` runs what `toolkit train` runs, on every row (no validation split): by default
    the exact solver, whose solution is the float64 data's least-squares optimum to
    float64's resolution. The fitted model exports to one ONNX file through the same
    parity gate and model card as `toolkit export` (`export`), which
    `toolkit.runtime.Predictor` then runs without torch.

    Parameters
    ----------
    solver : {'exact', 'sgd', 'adam', 'lbfgs'}, default='exact'
        Closed-form least squares, or a PyTorch optimizer on whitened features.
    l2 : float >= 0, default=0.0
        Ridge penalty `l2 * ||w||^2` (scikit-learn's `Ridge(alpha)`); the intercept is
        not penalised.
    fit_intercept : bool, default=True
        Fit a bias term; False fits `y = X @ coef_`.
    dtype : {None, 'float32', 'float64'}, default=None
        Precision of the model and of its export. None follows the features as
        scikit-learn does: float32 when every feature is float32, else float64.
    device : str, default='auto'
        Where to train: `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
    seed : int, default=0
        Fixes the iterative solvers' initialization and shuffling.
    epochs : int >= 1 or None, default=None
        Iterative solvers: the most epochs to run. None, here and below: the solver's
        default (as `toolkit train`); any value is refused with `solver='exact'`.
    lr : float > 0 or None, default=None
        Iterative solvers: the learning rate (on standardized data).
    batch_size : int >= 0 or None, default=None
        Iterative solvers: rows per step; 0 is the full batch.
    patience : int >= 0 or None, default=None
        Iterative solvers: stop after this many epochs without improvement; 0 never stops.
    chunk_rows : int >= 1, default=65536
        Rows converted to float64 at a time: with `fit`, the float64 copy of the data
        the later passes read is kept as these chunks.
    categorical, missing, missing_indicator, na_values, max_levels
        How a raw table is read, as `toolkit.train`'s keywords (defaults None, 'error',
        False, None, 100): integer columns to encode as categories (text, boolean and
        categorical ones always are), what a missing value (NaN, null, a `na_values`
        text) does ('error', 'drop' its row in `fit`, 'mean', 'median'), `col[(missing)]`
        indicators, levels kept per column.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
        The weights, in the model's dtype (exactly the exported model's).
    intercept_ : float or ndarray of shape (n_targets,)
        The bias (0.0 without an intercept).
    n_features_in_ : int
        Number of features seen during `fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The features' names, when `X` had string column names (a table's raw columns).
    encoded_feature_names_ : ndarray of shape (n_encoded,)
        The model's columns, which `coef_` follows: the features, or for a raw table
        their encoding (`firm[GE]`, `x[(missing)]`, see toolkit/columns.py).
    n_iter_ : int or None
        Epochs run by an iterative solver; None for `solver='exact'`.

    See Also
    --------
    toolkit.train : the same fit from files, writing a checkpoint.
    sklearn.linear_model.LinearRegression, sklearn.linear_model.Ridge : the same models.

    Examples
    --------
    >>> import numpy as np
    >>> from toolkit import LinearRegressor
    >>> X = np.array([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [2.0, 3.0]])
    >>> y = X @ [1.0, 2.0] + 3.0
    >>> model = LinearRegressor(dtype="float64").fit(X, y)
    >>> model.coef_.round(6), round(float(model.intercept_), 6)
    (array([1., 2.]), 3.0)
    >>> model.predict([[3.0, 5.0]])
    array([16.])
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "solver": [StrOptions(set(SOLVERS))],
        "l2": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "dtype": [StrOptions(set(DTYPES)), None],
        "device": [str],
        "seed": [Interval(Integral, SEED_MIN, SEED_MAX, closed="both")],
        "epochs": [Interval(Integral, 1, None, closed="left"), None],
        "lr": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 0, None, closed="left"), None],
        "patience": [Interval(Integral, 0, None, closed="left"), None],
        "chunk_rows": [Interval(Integral, 1, None, closed="left")],
        "categorical": [list, tuple, None],
        "missing": [StrOptions(set(MISSING_POLICIES))],
        "missing_indicator": ["boolean"],
        "na_values": [list, tuple, None],
        "max_levels": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(
        self,
        *,
        solver: str = SOLVER,
        l2: float = L2,
        fit_intercept: bool = True,
        dtype: str | None = None,
        device: str = DEVICE,
        seed: int = SEED,
        epochs: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        patience: int | None = None,
        chunk_rows: int = CHUNK_ROWS,
        categorical: list[str] | None = None,
        missing: str = MISSING,
        missing_indicator: bool = False,
        na_values: list[str] | None = None,
        max_levels: int = MAX_LEVELS,
    ) -> None:
        self.solver = solver
        self.l2 = l2
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        self.device = device
        self.seed = seed
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.patience = patience
        self.chunk_rows = chunk_rows
        self.categorical = categorical
        self.missing = missing
        self.missing_indicator = missing_indicator
        self.na_values = na_values
        self.max_levels = max_levels

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearRegressor:
        """Fit on every row of `X` and `y` with `toolkit.train`; returns the estimator.

        Parameters
        ----------
        X : array-like, DataFrame or pyarrow Table of shape (n_samples, n_features)
            Features: an array, a pandas or polars DataFrame or a pyarrow Table, whose
            columns are the features, by name (text, boolean and categorical ones encoded).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets; several columns fit a multi-output model.
        sample_weight : array-like of shape (n_samples,) >= 0 or None: weighted least squares.

        Returns
        -------
        self : LinearRegressor
        """
        from toolkit.api import train

        self._validate_params()
        data = inputs.training_data(self, X, y, reset=True, sample_weight=sample_weight)
        dtype = self.dtype or data.dtype
        with (
            inputs.blas_limit(data.source),
            tempfile.TemporaryDirectory(prefix="toolkit-fit-") as folder,
        ):
            out = Path(folder) / "model.pt"
            result = train(
                data.source,
                val_fraction=0.0,  # scikit-learn fits every row it is given
                weight=data.source.weight_name,
                **inputs.train_options(self),
                **inputs.table_options(self),
                dtype=dtype,
                out=out,
            )
            checkpoint = out.read_bytes()
        inputs.warn(result.notes)
        inputs.set_model(self, result, data.y_ndim, dtype)
        self._table = result.table  # how raw columns become coef_'s (None: numeric)
        self._checkpoint: bytes | None = checkpoint
        moments = result.moments.to_plain() if result.moments is not None else None
        self._stream = inputs.fitted_stream(moments)
        self.n_iter_ = result.details.get("epochs_run")
        return self

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearRegressor:
        """Add a batch to the exact solver's statistics and solve again; returns the estimator.

        Memory stays bounded by the number of columns, whatever the rows streamed, and the
        model equals one `fit` on the concatenation of every batch (a `fit` before
        included) up to rounding (see `toolkit.training.stream`). While the rows cannot
        determine the model (fewer rows than parameters, a feature constant so far), the
        batch is kept and a warning says so; the model is fitted once they can.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,) >= 0 or None

        Returns
        -------
        self : LinearRegressor
        """
        from toolkit.training import stream
        from toolkit.training.device import resolve_device

        first = getattr(self, "_stream", None) is None
        if first:
            self._validate_params()
        inputs.refuse_tables_in_partial_fit(self, X)
        if self.solver != "exact":
            raise UsageError(
                f"partial_fit streams into the exact solver's statistics; solver="
                f"{self.solver!r} needs the rows again each epoch. Use solver='exact', or fit."
            )
        X, y2d, y_ndim = inputs.batch(self, X, y, reset=first)
        if first:
            self._stream_names = inputs.target_names(y, y2d.shape[1], inputs.feature_names(self))
            self._stream_dtype = self.dtype or ("float32" if X.dtype == np.float32 else "float64")
            self._y_ndim = y_ndim
        elif y2d.shape[1] != len(self._stream_names):
            raise ValueError(
                f"y has {y2d.shape[1]} target column(s), but LinearRegressor was fitted with "
                f"{len(self._stream_names)}; every batch must have the same targets."
            )
        device = resolve_device(self.device)
        state = inputs.with_sample(self.__dict__.get("_stream"), self.__dict__.get("_checkpoint"))
        weights = inputs.sample_weights(sample_weight, X)
        self._stream = stream.add_batch(state, X, y2d, device, weights)
        result = inputs.solved_stream(self, device)  # None, with a warning: not yet
        if result is not None:
            inputs.set_model(self, result, self._y_ndim, self._stream_dtype)
            self._checkpoint = None  # export builds it from the stream
            self.n_iter_ = None
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predict with `X @ coef_.T + intercept_`, computed in the model's dtype.

        Equal to `toolkit.runtime.Predictor(exported_file).predict(X)` up to the order of
        summation (the parity gate's tolerances, `toolkit.defaults.PARITY_TOLERANCES`).
        The result has X's dtype when that is wider than the model's (float64 values of a
        float32 model's float32 arithmetic), as scikit-learn's regressors return.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        weights = self.__dict__.get("_weights_t")
        if weights is None:
            check_is_fitted(self)
        if self.__dict__.get("_table") is not None:  # raw columns, encoded as in fit
            return self._product(inputs.encoded_rows(self, X))
        # A float array of the right width needs no conversion: skip scikit-learn's checks,
        # which cost several times the product for one row. NaN or infinity in X shows in
        # the output (the product carries them), and then the full check names it.
        if (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.dtype.kind == "f"
            and X.shape[1] == self.n_features_in_
            and "feature_names_in_" not in self.__dict__
        ):
            out = self._product(X)
            if np.isfinite(out).all():
                return out
        return self._product(validate_data(self, X, reset=False, dtype=[np.float64, np.float32]))

    def _product(self, X: np.ndarray) -> np.ndarray:
        weights = self._weights_t
        out = X.astype(weights.dtype, copy=False) @ weights + self._bias
        if X.dtype.itemsize > out.dtype.itemsize:
            out = out.astype(X.dtype)
        return out.ravel() if self._y_ndim == 1 else out

    def export(
        self,
        path: str | Path,
        *,
        opset: int = OPSET,
        atol: float | None = None,
        rtol: float | None = None,
        validate: bool = True,
        providers: list[str] | None = None,
        unknown_level: str | None = None,
    ) -> ExportResult:
        """Export the fitted model to ONNX through `toolkit.export`: the same graph checks,
        parity gate (PyTorch against ONNX Runtime on every provider) and model card as
        `toolkit export`. Nothing is written unless every check passes.

        Parameters
        ----------
        path : str or Path
            The `.onnx` file to write (atomically).
        opset : int, default=18
            ONNX opset; refused when the installed onnxruntime cannot run it.
        atol, rtol : float or None, default=None
            Parity tolerances (None: 1e-5 for float32 models, 1e-12 for float64).
        validate : bool, default=True
            Run the parity gate (False skips it; the model card records that).
        providers : list of str or None, default=None
            Execution providers the gate runs on (None: every available one).
        unknown_level : {"error", "reference"} or None, default=None
            Models fitted on categorical columns: an unseen level is refused or encoded as
            the reference level (None: "error", as `toolkit export --unknown-level`).

        Returns
        -------
        ExportResult
            The file, its size, the parity report and the model card.
        """
        import toolkit.export

        check_is_fitted(self)
        with tempfile.TemporaryDirectory(prefix="toolkit-export-") as folder:
            checkpoint = self.save_checkpoint(Path(folder) / "model.pt")
            options = dict(atol=atol, rtol=rtol, validate=validate, providers=providers)
            return toolkit.export(checkpoint, path, opset, unknown_level=unknown_level, **options)

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write the fitted model's checkpoint as `toolkit train --out` does."""
        from toolkit.files import atomic_write

        check_is_fitted(self)
        path = Path(path)
        if self._checkpoint is not None:
            with atomic_write(path) as handle:
                handle.write(self._checkpoint)
            return path
        from toolkit.training import checkpoint, stream

        result = stream.solve_stream(self._stream, inputs.stream_spec(self), self.l2)
        return checkpoint.save(path, stream.stream_payload(result, self._stream, self.seed))

    def __sklearn_is_fitted__(self) -> bool:
        return "coef_" in self.__dict__

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.allow_nan = self.missing in ("mean", "median")  # NaN: imputed
        return tags
