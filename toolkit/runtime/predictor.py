"""`toolkit.runtime.Predictor`: a small, fast and honest ONNX Runtime wrapper for apps.

It needs only numpy and onnxruntime (never torch or onnx; tests/test_layout.py proves
it), and it fixes what raw onnxruntime leaves to the caller:

- Providers: "auto" asks for every available one in PROVIDER_ORDER (TensorRT, then CUDA,
  ..., CPU last), so a provider that fails to load falls back to the next, not straight
  to the CPU; asking explicitly for a provider that onnxruntime then does not use is an
  error saying why, not a silent CPU run. `predictor.provider` names what really runs.
- Inputs: numpy arrays (1-D = one row), nested lists, a mapping of feature name to column,
  or a pandas DataFrame (by column name). A table model (a `table` plan in its card)
  takes raw values instead: DataFrames, columns, records or rows with mixed types
  (table.py, table_model.py). A guard (here and in inputs.py) explains wrong
  shapes, names, types and NaN/infinity with expected vs got before onnxruntime sees them.
- Conversion policy: floats and integers are converted to the model's dtype (integers
  beyond 2**24 lose precision in a float32 model, as they would in numpy; floats beyond
  its range are refused rather than turned into infinity); booleans (in lists too),
  strings, objects and complex numbers are refused. Big-endian and non-contiguous arrays
  become native, contiguous copies (onnxruntime would read big-endian bytes as garbage).
  A model with a fixed batch size gets a clear error for any other batch size.
- Loading: missing, truncated, non-ONNX or oversized files (onnxfile.MAX_MODEL_BYTES,
  judged by size before reading) raise ModelLoadError naming the path; external data
  outside the model's folder, non-standard operator domains and any operator a linear
  model does not need (graph.py: no loops, no branches) are refused before onnxruntime
  opens the file, as are weights holding NaN or infinity; the signature must be one 2-D
  float input and one 2-D output with the same batch dimension.
- Outputs: one row of n_targets per input row, checked on every call (the shape is free to
  compare); a model that fails inside onnxruntime or returns other rows raises
  ModelRunError naming the file. An empty list, like an empty (0, F) array, gives (0, T).
- Threads: one Predictor serves concurrent predict() calls (onnxruntime's run is
  thread-safe; the single-row fast path keeps one IOBinding per thread).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from toolkit import card
from toolkit.errors import (
    InputError,
    ModelRunError,
    ProviderError,
)
from toolkit.runtime import explain
from toolkit.runtime.binding import compiled_session, row_binding
from toolkit.runtime.inputs import all_finite, as_array, check_finite, non_numeric, refuse_bools
from toolkit.runtime.providers import fallback_message, provider_chain
from toolkit.runtime.session import brief, open_session, signature

if TYPE_CHECKING:
    from toolkit.columns import TablePlan

# Operators through which a non-finite input always yields a non-finite output row.
NON_FINITE_PROPAGATING = frozenset({"Gemm", "MatMul", "Add", "Sub", "Mul", "Identity"})
# A float64 value beyond float32's range becomes infinity in the conversion; the guard
# reports it with the value (check_finite), so numpy's warning is noise.
warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning, __name__)


class Predictor:
    """Load an ONNX regressor once; call `predict` from any number of threads.

    Needs only numpy and onnxruntime. The file is checked before onnxruntime opens it
    (size, external data, operators, signature); a bad one raises `ModelLoadError`.

    Parameters
    ----------
    path : str or Path
        The .onnx file (made by `toolkit export`, or any model with one 2-D float input
        and one 2-D output).
    providers : str or sequence of str, default='auto'
        "auto" (the fastest available: TensorRT, CUDA, ... then CPU), a name ("cpu",
        "cuda", "CUDAExecutionProvider", ...) or a list in order of preference. An
        explicit choice that onnxruntime cannot honour raises `ProviderError`.
    intra_op_threads, inter_op_threads : int or None, default=None
        onnxruntime's thread pools (None: its default).
    allow_non_finite : bool, default=False
        Accept NaN and infinity in inputs (refused by default, naming the cell).

    Attributes
    ----------
    provider : str
        The execution provider that runs the model.
    feature_names, target_names : list of str
        From the model card (`x0, x1, ...` and `y0, ...` without one).
    n_features, n_targets : int
    dtype : numpy.dtype
        The model's float type; inputs are converted to it.
    metadata : dict of str to str
        The model card.

    Examples
    --------
    >>> predictor = Predictor("models/model.onnx")  # doctest: +SKIP
    >>> predictor.predict([[1.0, 2.0]])  # doctest: +SKIP
    array([[2.]], dtype=float32)
    """

    def __init__(
        self,
        path: str | Path,
        providers: str | Sequence[str] = "auto",
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        allow_non_finite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.allow_non_finite = allow_non_finite
        requested, explicit = provider_chain(providers)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        if inter_op_threads is not None:
            options.inter_op_num_threads = inter_op_threads
        self._session, info, explained = open_session(self.path, options, requested)
        # In a graph of only these operators a NaN or infinity in any input cell makes its
        # output row non-finite (0 * inf is NaN), so checking the n x targets output
        # replaces scanning the n x features input; the input is scanned only to word an
        # error. Measured: the scan cost up to 54% of predict() on 1M x 100 rows.
        self._finite_via_output = bool(info.op_types) and info.op_types <= NON_FINITE_PROPAGATING
        self.provider: str = self._session.get_providers()[0]
        if explicit and self.provider != requested[0]:
            raise ProviderError(fallback_message(requested[0], self.provider))

        # Read by onnxfile (leniently decoded): onnxruntime's own map raises
        # UnicodeDecodeError on a card that is not UTF-8.
        self.metadata: dict[str, str] = dict(info.metadata)
        # A table model (a `table` plan in its card) takes raw columns: table_model.py.
        self.table: TablePlan | None = _table_plan(self.path, self.metadata)
        self.unknown_levels_seen = 0
        if self.table is None:
            facts = signature(self.path, self._session)
            self.input_name, self.output_name, self.dtype = facts[:3]
            self.n_features, self.n_targets = facts[3:5]
            # A model traced with a frozen batch size runs only batches of exactly that size.
            self._fixed_rows: int | None = facts[5]
        else:
            self.output_name, self.dtype, self.n_targets = _table_model().signature(
                self.path, self._session, self.table
            )
            self.input_name, self.n_features = None, len(self.table.encoded_names)
            self._fixed_rows = None
        self.feature_names = card.names(self.metadata, card.FEATURE_NAMES, "x", self.n_features)
        self.target_names = card.names(self.metadata, card.TARGET_NAMES, "y", self.n_targets)
        self._local = threading.local()
        # Models exported with --explain: predict() runs the graph pruned to `prediction`.
        self.explain_outputs: tuple[str, ...] = ()
        self._explainer: explain.Explainer | None = None
        if explained is not None:
            full_session, self.explain_outputs = explained
            self._explainer = explain.Explainer(full_session, self.explain_outputs, self)
        self._compiled = compiled_session(self._session)
        self._run = (self._compiled or self._session).run
        self._output_names = [self.output_name]
        self._table = (
            None if self.table is None else _table_model().TableModel(self, self.table, self._run)
        )

    @property
    def session(self) -> Any:
        """The underlying onnxruntime.InferenceSession, for what this class does not cover."""
        return self._session

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.path)!r}, provider={self.provider!r}, "
            f"features={self.feature_names}, targets={self.target_names}, dtype={self.dtype})"
        )

    def predict(
        self, data: Any, *, by_name: bool = False, first_row: int = 1
    ) -> np.ndarray | dict[str, np.ndarray]:
        """Predict every row of `data`.

        Parameters
        ----------
        data : array-like, mapping or DataFrame
            One row (1-D) or a batch (2-D) of numbers, nested lists, a mapping of feature
            name to column, or a pandas DataFrame (columns taken by name). A table model
            takes raw values: see `toolkit.runtime.table`.
        by_name : bool, default=False
            Return `{target name: (n_rows,) array}` instead of one array.
        first_row : int, default=1
            How error messages number the first row (the CLI passes file row numbers).

        Returns
        -------
        ndarray of shape (n_rows, n_targets), or dict of str to ndarray
            In the model's dtype.

        Raises
        ------
        InputError
            Wrong width, rank or names, non-numeric values, NaN or infinity, a table
            model's unknown level under "error" (the message names the row and column).
        """
        if self._table is not None:  # raw columns in: table_model.py
            return self._table.predict(data, first_row, by_name)
        original, rows = self._guard(data, first_row)
        deferred = self._finite_via_output and not self.allow_non_finite
        if not deferred:
            check_finite(
                original, rows, first_row, self.feature_names, self.dtype, self.allow_non_finite
            )
        if len(rows) == 0:
            result = np.empty((0, self.n_targets), dtype=self.dtype)
        elif len(rows) == 1:
            result = self._run_one(rows)  # its output buffer is (1, n_targets): ort checks
        else:
            try:
                (result,) = self._run(self._output_names, {self.input_name: rows}, None)
            except Exception as error:  # onnxruntime's Fail/InvalidArgument/... types
                raise self._run_error(error, len(rows)) from error
            # The shape is free to compare; a graph may return other rows than it was given.
            if result.shape != (len(rows), self.n_targets):
                raise ModelRunError(
                    f"model {str(self.path)!r} returned an array of shape {result.shape} for "
                    f"{len(rows)} input rows; a regressor returns one row of {self.n_targets} "
                    "per input row. The model file is broken: re-export it."
                )
        if deferred and not all_finite(result):
            # Find and name the bad input cell; finite inputs may still overflow the output.
            check_finite(
                original, rows, first_row, self.feature_names, self.dtype, self.allow_non_finite
            )
        if by_name:
            return {name: result[:, t] for t, name in enumerate(self.target_names)}
        return result

    @property
    def input_names(self) -> list[str]:
        """The columns `predict` takes: the raw columns of a table model, else the features."""
        return self.table.raw_names if self.table is not None else list(self.feature_names)

    def predict_counted(self, data: Any, *, first_row: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """A table model's predictions and, per row, how many of its cells held an unknown
        level (no warning; under --unknown-level error one is an InputError, as in
        `predict`). A numeric model's counts are all 0."""
        if self._table is None:
            result = self.predict(data, first_row=first_row)
            return result, np.zeros(len(result), dtype=np.int64)  # type: ignore[arg-type]
        result, unknown, _ = self._table.counted(data, first_row)
        return result, unknown

    def explain(self, data: Any, *, first_row: int = 1) -> explain.Explanation:
        """Each row's prediction, contributions, and for models with inference its standard
        error and prediction interval (see `explain.Explanation`).

        The input is guarded as in `predict`. PredictorError when the model was exported
        without `toolkit export --explain`. A table model takes the raw inputs of `predict`
        and treats unknown levels as it does.
        """
        if self._table is None:
            return explain.explain_rows(self, self._explainer, data, first_row)
        found, unknown = self._table.explain(self._explainer, data, first_row)
        if not self._table.error_policy and np.count_nonzero(unknown):
            self._table.warn(unknown, stacklevel=3)
        return found

    def explain_counted(
        self, data: Any, *, first_row: int = 1
    ) -> tuple[explain.Explanation, np.ndarray]:
        """`explain` without the warning, and per row how many cells held an unknown level
        (as `predict_counted`; a numeric model's counts are all 0)."""
        if self._table is None:
            found = self.explain(data, first_row=first_row)
            return found, np.zeros(len(found.prediction), dtype=np.int64)
        return self._table.explain(self._explainer, data, first_row)

    def prepare(self, data: Any, first_row: int = 1) -> np.ndarray | dict[str, np.ndarray]:
        """The input guard: a native, C-contiguous (n, n_features) array in the model's dtype
        (a table model: {raw column: its graph input}).

        `first_row` numbers the rows in error messages (the CLI passes file row numbers).
        """
        if self._table is not None:  # a table model: the graph's inputs, by column
            feeds = self._table.inputs.feeds(data, first_row, not self.allow_non_finite)[0]
            return {name: column.copy() for name, column in feeds.items()}  # not the buffers
        original, converted = self._guard(data, first_row)
        check_finite(
            original, converted, first_row, self.feature_names, self.dtype, self.allow_non_finite
        )
        return converted

    def _guard(self, data: Any, first_row: int) -> tuple[np.ndarray, np.ndarray]:
        """Every check but finiteness: (the input as an array, its converted copy or itself)."""
        if (  # already right (what a batch pipeline passes): the checks below all pass
            type(data) is np.ndarray
            and data.dtype is self.dtype
            and data.ndim == 2
            and data.shape[1] == self.n_features
            and self._fixed_rows is None
            and data.flags.c_contiguous
        ):
            return data, data
        array = data if type(data) is np.ndarray else as_array(data, self.feature_names, first_row)
        if array.ndim == 1 and array.size == 0:  # [] is no rows, as np.empty((0, F)) is
            array = array.reshape(0, self.n_features)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2:
            raise InputError(
                f"expected a 1-D row or a 2-D batch of shape (n, {self.n_features}), "
                f"got an array of shape {array.shape}"
            )
        if array.shape[1] != self.n_features:
            raise InputError(
                f"expected {self.n_features} features per row ({', '.join(self.feature_names)}), "
                f"got {array.shape[1]}"
            )
        if self._fixed_rows is not None and len(array) not in (0, self._fixed_rows):
            raise InputError(
                f"expected batches of exactly {self._fixed_rows} row"
                f"{'s' if self._fixed_rows > 1 else ''} (the model's input shape is "
                f"[{self._fixed_rows}, {self.n_features}]), got {len(array)}; split the input "
                "or export the model with a dynamic batch axis"
            )
        kind = array.dtype.kind
        if kind not in "fiu":
            raise InputError(non_numeric(array, self.feature_names, first_row))
        if isinstance(data, (list, tuple)):  # a tuple: twice as fast as list | tuple
            refuse_bools(data, self.feature_names, first_row)
        converted = array
        # Equal dtypes are native (byte order is part of equality); `is` is the cheap case.
        same = array.dtype is self.dtype or array.dtype == self.dtype
        if not same or not array.flags.c_contiguous:
            converted = _converted(array, self.dtype)
        return array, converted

    def _run_one(self, row: np.ndarray) -> np.ndarray:
        # One row: one IOBinding per thread, its input row and output buffer bound once
        # (toolkit.runtime.binding): about 2x cheaper than run() here.
        try:
            feed, run, output = self._local.binding
        except AttributeError:
            feed, run, output = self._local.binding = self._new_binding()
        try:
            feed(row)
            run()
        except Exception as error:  # onnxruntime's RuntimeError, with its status text
            raise self._run_error(error, 1) from error
        return output.copy()

    def _new_binding(self) -> tuple[Any, Any, np.ndarray]:
        """(feed a row, run, output buffer) for this thread's single-row IOBinding."""
        output = np.empty((1, self.n_targets), dtype=self.dtype)
        feed, run, binding, _ = row_binding(
            self._session, self._compiled, self.input_name, self.dtype, self.n_features
        )
        binding.bind_output(
            self.output_name, "cpu", 0, self.dtype, output.shape, output.ctypes.data
        )
        return feed, run, output

    def _run_error(self, error: Exception, rows: int) -> ModelRunError:
        return ModelRunError(
            f"onnxruntime failed to run model {str(self.path)!r} on {rows} "
            f"row{'s' if rows > 1 else ''}: {brief(error)}. The file loads but cannot "
            f"compute; check it with `toolkit info {self.path}` or re-export it."
        )


def _converted(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A native, C-contiguous copy in `dtype`; a value beyond its range becomes infinity,
    which check_finite then reports with the value. (The warnings filter at the top of this
    module silences numpy's overflow warning at no cost per call: np.errstate cost 0.7 us.)"""
    try:
        return np.ascontiguousarray(array, dtype=dtype)
    except (FloatingPointError, RuntimeWarning):  # np.seterr(over="raise"), warnings as errors
        with np.errstate(over="ignore"):
            return np.ascontiguousarray(array, dtype=dtype)


def _table_model() -> ModuleType:
    """toolkit.runtime.table_model, imported on the first table model: numeric models
    load without it (28 ms less to `import toolkit.runtime`)."""
    from toolkit.runtime import table_model

    return table_model


def _table_plan(path: Path, metadata: dict[str, str]) -> TablePlan | None:
    """The card's table plan; None for a numeric model (table_model.py stays unimported)."""
    return _table_model().plan_of(path, metadata) if card.TABLE in metadata else None
