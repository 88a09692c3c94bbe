"""One raw column's values -> the array a table model's graph input takes, or the bad cell.

A table model (toolkit/columns.py) takes one 1-D input per raw column: numbers in the
model's dtype for a numeric column (NaN = missing), level texts for a categorical one
("" = missing). What an app passes is converted here, whatever it is: a numpy array, a
list, a pandas or polars column (already turned into numpy by the caller), with mixed
types in it.

- Missing, in both kinds: None, NaN, pandas' NA, "" and the plan's `na_values` tokens.
- Numeric columns: ints and floats (numpy's too); booleans and other texts are refused.
- Categorical columns: `columns.level_text` (true/false, decimal ints, 3.0 -> "3"); any
  other value is its text (an unknown level unless the model knows it).

Pure functions; a bad cell raises `BadCell` with its index, which the caller words with
the row and column.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from toolkit.columns import level_text

# na_values tokens that make infinity missing in numbers not read from text, as in
# toolkit.io.encode (which the runtime tier may not import).
INF_TOKENS = ("inf", "infinity", "-inf", "+inf", "-infinity")
# The element types a list of numbers is made of in the common case: numpy converts them
# (None to NaN) without a look at each value.
PLAIN_NUMBERS = frozenset({float, int, type(None)})


class BadCell(Exception):
    """Cell `index` of a column holds `value`, which is not what the column takes."""

    def __init__(self, index: int, value: Any, expected: str) -> None:
        super().__init__(index, value, expected)
        self.index, self.value, self.expected = index, value, expected


class NotOneRow(Exception):
    """A value the one-row path met is a column: the input is columns after all."""


def is_missing(value: Any, na_values: Collection[str]) -> bool:
    """None, NaN, pandas' NA, "" or an `na_values` token."""
    if value is None:
        return True
    if isinstance(value, str):
        return value == "" or value in na_values
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def number(index: int, value: Any, na_values: Collection[str]) -> float | None:
    """A numeric cell as a float (None: missing), or BadCell."""
    if isinstance(value, bool | np.bool_):
        raise BadCell(index, value, "a number")
    if is_missing(value, na_values):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        try:
            return float(value)
        except OverflowError as error:  # an int beyond float64
            raise BadCell(index, value, "a number within float64's range") from error
    raise BadCell(index, value, "a number")


def text(value: Any, na_values: Collection[str], index: int = 0) -> str:
    """A categorical cell's level text ("" when missing), or BadCell for a list, an
    object or anything else that is not one value."""
    if type(value) is str:
        return "" if value in na_values else value
    if is_missing(value, na_values):
        return ""
    if not is_cell(value):
        raise BadCell(index, value, "a text, a number or a boolean")
    if isinstance(value, np.bool_):
        value = bool(value)
    elif isinstance(value, np.integer):
        value = int(value)
    elif isinstance(value, np.floating):
        value = float(value)
    return level_text(value)


def numbers(values: Any, dtype: np.dtype, na_values: Collection[str]) -> np.ndarray:
    """A numeric column in `dtype` (missing cells NaN; not yet checked for them)."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"expected a 1-D column, got an array of shape {values.shape}")
        kind = values.dtype.kind
        if kind in "fiu":
            return _cast(values, dtype)
        if kind == "b":
            raise BadCell(0, values[0].item(), "a number")
        values = values.tolist()
    elif not isinstance(values, list | tuple):
        values = _listed(values)
    if not set(map(type, values)) <= PLAIN_NUMBERS:
        values = [number(i, v, na_values) for i, v in enumerate(values)]
    try:
        return _cast(values, dtype)
    except OverflowError:  # a Python int beyond float64
        for i, value in enumerate(values):
            number(i, value, na_values)
        raise


def texts(values: Any, na_values: Collection[str]) -> np.ndarray:
    """A categorical column as level texts ("" where missing), for a tensor(string) input."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"expected a 1-D column, got an array of shape {values.shape}")
        kind = values.dtype.kind
        if kind == "U":
            if na_values:
                values = np.where(np.isin(values, list(na_values)), "", values)
            return values
        if kind in "iu":
            return values.astype(str)
        if kind == "b":
            return np.where(values, "true", "false")
        values = values.tolist()
    elif not isinstance(values, list | tuple):
        values = _listed(values)
    array = np.empty(len(values), dtype=object)
    array[:] = [
        value if type(value) is str else text(value, (), i) for i, value in enumerate(values)
    ]
    if na_values:
        array[np.isin(array, list(na_values))] = ""
    return array


def _listed(values: Any) -> list[Any]:
    """A column that is neither an array, a list nor a tuple (a Series, a generator...)."""
    if isinstance(values, Mapping | bytes):
        raise ValueError(f"expected a value or a list of values, got {type(values).__name__}")
    return list(values)


def blanks(column: np.ndarray) -> np.ndarray:
    """Indices of the missing ("") cells of a text column."""
    return np.flatnonzero(column == "")


def _cast(values: Sequence[Any] | np.ndarray, dtype: np.dtype) -> np.ndarray:
    """As a contiguous array in `dtype`; a value beyond its range becomes infinity (the
    caller reports it with the value)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(values, dtype=dtype)


def cast_one(number: float, dtype: np.dtype) -> Any:
    """One number in `dtype`, cast by `_cast`: beyond the range, infinity, silently."""
    return _cast([number], dtype)[0]


# The types of a cell that the one-row path recognises at a glance.
CELLS = frozenset({str, float, int, bool, type(None)})


def is_cell(value: Any) -> bool:
    """A single cell value (not a column or a row)."""
    return (
        isinstance(value, str | int | float | bool | np.generic)
        or value is None
        or type(value).__name__ == "NAType"  # pandas' NA
    )


def shown(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    return "None" if value is None else repr(value)


def is_series(data: Any) -> bool:
    """A pandas Series (not imported to tell): a row, as `frame.iloc[i]` gives."""
    return type(data).__module__.startswith("pandas") and type(data).__name__ == "Series"


def frame_names(data: Any) -> list[str] | None:
    """The column names of a pandas or polars DataFrame or a pyarrow Table, else None."""
    package = type(data).__module__.split(".")[0]
    if package in ("pandas", "polars") and hasattr(data, "columns"):
        return [str(name) for name in data.columns]
    if package == "pyarrow" and hasattr(data, "column_names"):
        return list(data.column_names)
    return None


def frame_column(data: Any, name: str) -> Any:
    """One column as numpy (pandas, polars) or a list (pyarrow)."""
    if hasattr(data, "column_names"):  # pyarrow: to_numpy would need pandas for some types
        return data.column(name).to_pylist()
    column = data[name]
    to_numpy = getattr(column, "to_numpy", None)
    return to_numpy() if to_numpy is not None else np.asarray(column)
