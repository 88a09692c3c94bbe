"""The Predictor's input guard: turn what an app passes into rows, or say why not.

Accepted: numpy arrays (1-D = one row), nested lists and tuples, a mapping of feature
name to column, or a pandas DataFrame (by column name, without importing pandas).
Refused, with the row and column named: booleans (numpy would make them 0/1), strings,
objects and complex numbers, ragged rows, NaN and infinity (unless allowed), and floats
beyond the model's dtype range (numpy would make them infinity).

Every function here is pure: the Predictor passes in its names and dtype.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from toolkit.errors import InputError


def as_array(data: Any, names: Sequence[str], first_row: int) -> np.ndarray:
    """`data` as an array with one column per feature (not yet converted or checked)."""
    if isinstance(data, np.ndarray):
        return data
    if _is_dataframe(data):
        missing = [name for name in names if name not in data.columns]
        if missing:
            lacking = ", ".join(repr(m) for m in missing)
            raise InputError(
                f"the DataFrame lacks column{'s' if len(missing) > 1 else ''} {lacking}; "
                f"expected {', '.join(names)}"
            )
        return data[list(names)].to_numpy()
    if isinstance(data, Mapping):
        return from_mapping(data, names, first_row)
    try:
        array = np.asarray(data)
    except ValueError as error:  # ragged nested lists
        raise InputError("expected rows of equal length, got a ragged sequence") from error
    if (
        array.dtype == object
        and array.ndim == 1
        and len(array)
        and isinstance(array[0], list | tuple)
    ):
        raise InputError("expected rows of equal length, got a ragged sequence")
    return array


def check_column_names(given: Sequence[Any], names: Sequence[str], where: str = "") -> None:
    """InputError unless `given` (a mapping's or record's keys) names every column of
    `names` and no other; `where` ("row 3") starts the message."""
    known = set(names)
    missing = [name for name in names if name not in given]
    extra = [name for name in given if name not in known]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(repr(m) for m in missing)}")
        if extra:
            problems.append(f"unknown {', '.join(repr(str(e)) for e in extra)}")
        start = f"{where}: " if where else ""
        raise InputError(f"{start}expected columns {', '.join(names)}; {' and '.join(problems)}")


def from_mapping(data: Mapping[str, Any], names: Sequence[str], first_row: int) -> np.ndarray:
    """Columns by feature name -> an (n, n_features) array; every name exactly once."""
    check_column_names(list(data), names)
    columns = [_column(name, data[name]) for name in names]
    lengths = {len(c) for c in columns}
    if len(lengths) > 1:
        sizes = ", ".join(f"{n}: {len(c)}" for n, c in zip(names, columns, strict=True))
        raise InputError(f"expected columns of equal length, got {sizes}")
    for name, column in zip(names, columns, strict=True):
        if column.dtype.kind not in "fiu":
            raise InputError(non_numeric(column[:, None], [name], first_row))
        found = first_bool([data[name]] if isinstance(data[name], list | tuple) else [])
        if found is not None:
            (_, row), value = found
            raise InputError(
                f"row {row + first_row}, column {name!r}: expected a number, got {value!r}"
            )
    return np.column_stack(columns)


def _column(name: str, values: Any) -> np.ndarray:
    try:
        column = np.atleast_1d(np.asarray(values))
    except ValueError as error:  # ragged nested lists
        raise InputError(
            f"column {name!r}: expected a number or a 1-D sequence of numbers, "
            "got a ragged sequence"
        ) from error
    if column.ndim != 1:
        raise InputError(
            f"column {name!r}: expected a number or a 1-D sequence of numbers, "
            f"got an array of shape {column.shape}"
        )
    return column


def refuse_bools(data: Sequence[Any], names: Sequence[str], first_row: int) -> None:
    """numpy turns [1, True] into [1, 1]; the policy refuses booleans wherever they are."""
    found = first_bool(data if _is_nested(data) else [data])
    if found is not None:
        (row, column), value = found
        raise InputError(
            f"row {row + first_row}, column {names[column]!r}: expected a number, got {value!r}"
        )


def non_numeric(array: np.ndarray, names: Sequence[str], first_row: int) -> str:
    """The message for an array numpy did not read as numbers: the first bad cell if any."""
    if array.dtype.kind == "b":
        return f"expected numbers, got booleans (dtype {array.dtype}); convert them explicitly"
    if array.dtype.kind == "c":
        return f"expected real numbers, got complex numbers (dtype {array.dtype})"
    for (row, column), value in np.ndenumerate(array):
        value = value.item() if isinstance(value, np.generic) else value
        try:
            float(value)
        except (TypeError, ValueError):
            return (
                f"row {row + first_row}, column {names[column]!r}: expected a number, got {value!r}"
            )
        if isinstance(value, bool | np.bool_):
            return (
                f"row {row + first_row}, column {names[column]!r}: expected a number, got {value!r}"
            )
    return f"expected numbers, got an array of dtype {array.dtype}; convert it to float first"


def first_bool(rows: Any) -> tuple[tuple[int, int], Any] | None:
    """((row, column), value) of the first boolean in nested rows; numpy would make it 0/1."""
    # One pass over the element types runs in C (about 3x faster than the loop below, a
    # third of what np.asarray itself costs on lists); locate the boolean only if there is one.
    if not set(map(type, itertools.chain.from_iterable(rows))) & {bool, np.bool_}:
        return None
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, bool | np.bool_):
                return (r, c), value
    return None


def _is_nested(data: Sequence[Any]) -> bool:
    return len(data) > 0 and not np.isscalar(data[0]) and np.ndim(data[0]) > 0


def _is_dataframe(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "pandas" and hasattr(data, "columns")


# Finiteness

# The sum of squares below may overflow for huge finite values; that only sends the caller
# to the exact check, so numpy's warning is noise. A filter costs nothing per call (an
# errstate block would add a microsecond to every one-row predict).
warnings.filterwarnings("ignore", "overflow encountered in dot", RuntimeWarning, __name__)
# Up to this many values all_finite sums a Python list instead of calling numpy.
SMALL = 16


def all_finite(values: np.ndarray) -> bool:
    """True when every value is finite. One value (a one-row, one-target prediction) is
    checked as a Python float (0.06 us); a few are summed in Python (0.4 us, against
    1.9 us for the numpy calls below); more take one BLAS dot product, the cheapest full
    pass measured (62 us for 1M float32, against 80 us for isfinite().all() and 153 us
    for sum()). A sum (of squares) that overflows only sends the caller to its exact
    (slower) check."""
    size = values.size
    if size == 1:
        return math.isfinite(values.item())
    if size <= SMALL:
        return math.isfinite(sum(values.ravel().tolist()))
    # math.isfinite of the numpy scalar: np.isfinite() on a scalar costs a ufunc call.
    return math.isfinite(np.vdot(values, values))


def check_finite(
    array: np.ndarray,
    converted: np.ndarray,
    first_row: int,
    names: Sequence[str],
    dtype: np.dtype,
    allow_non_finite: bool,
) -> None:
    """Refuse a value the conversion to `dtype` overflowed, and NaN/infinity unless allowed.

    `array` is the input as given, `converted` its copy in the model's dtype (or itself).
    """
    if array.dtype.kind != "f":
        return
    narrowed = converted is not array and array.dtype.itemsize > dtype.itemsize
    if allow_non_finite and not narrowed:
        return
    finite = np.isfinite(converted)
    if finite.all():
        return
    if narrowed:
        overflow = ~finite & np.isfinite(array)
        if overflow.any():
            row, column = np.argwhere(overflow)[0]
            raise InputError(
                f"row {row + first_row}, column {names[column]!r}: "
                f"{float(array[row, column])!r} is beyond the range of the model's "
                f"{dtype} (largest magnitude {float(np.finfo(dtype).max):g}); "
                "scale the input or use a float64 model"
            )
    if not allow_non_finite:
        row, column = np.argwhere(~finite)[0]
        raise InputError(
            f"row {row + first_row}, column {names[column]!r}: expected a "
            f"finite number, got {float(array[row, column])!r}; NaN and infinity are "
            "refused (Predictor(..., allow_non_finite=True) accepts them)"
        )
