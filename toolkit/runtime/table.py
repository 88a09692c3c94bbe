"""Table models at run time: raw rows in (a DataFrame, columns, records or rows, mixed
types), one graph input per raw column out, checked; then the unknown-level count read.

A table model is one whose model card has the `table` key (toolkit/columns.py has the
plan and card.py the key): its graph takes one 1-D input per raw column, named as the
column (numbers in the model's dtype with NaN = missing, or level texts with "" =
missing), and returns, besides the prediction, `unknown_levels`: per row, how many
categorical cells hold a level the model does not know.

What `Predictor.predict` accepts for such a model, with the row and column named in
every refusal:

- a pandas or polars DataFrame, or a pyarrow Table (duck-typed: nothing is imported),
  columns taken by name; other columns (an id, the target) are ignored, as
  `toolkit predict` ignores the other columns of a file;
- a mapping of column name -> values (or one value: one row); every raw column exactly
  once, an unknown name refused (a typo would otherwise hide behind "missing column");
- a list of records (dicts), each with every raw column and no other;
- a list of rows (sequences of the raw columns' values in the model's order), or one row.

Missing values (None, NaN, pandas' NA, "", the plan's na_values tokens) are taken where
the model fills them and refused where it was trained with --missing error or drop.
Unknown levels follow the plan's `unknown_level`: "error" refuses the row naming the
value and the known levels; "reference" (the graph encodes them as the reference
level) warns once per call with the count, which `Predictor.unknown_levels_seen` sums.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from toolkit.columns import CATEGORICAL, TablePlan
from toolkit.errors import InputError
from toolkit.runtime import table_values as values_
from toolkit.runtime.inputs import all_finite, check_column_names
from toolkit.runtime.table_values import BadCell, NotOneRow

# Known levels shown in an unknown-level error.
SHOWN_LEVELS = 8


class TableInputs:
    """Turns what an app passes into the feeds of a table model's graph, or an InputError."""

    def __init__(self, plan: TablePlan, dtype: np.dtype) -> None:
        self.plan, self.dtype = plan, dtype
        self.names = plan.raw_names
        self.na = frozenset(plan.na_values)
        # Infinity is a missing value where training read it as one (toolkit.io.encode).
        lowered = {token.strip().lower() for token in plan.na_values}
        self.inf_missing = bool(lowered & set(values_.INF_TOKENS))
        # (name, categorical, takes a missing value) per column, in the model's order.
        self.specs = [(c.name, c.kind == CATEGORICAL, c.fill is not None) for c in plan.columns]
        self._local = threading.local()  # per thread: the 1-row path's arrays
        self.known = {c.name: frozenset(c.levels) | frozenset(c.other) for c in plan.categorical}

    # Forms of input

    def feeds(self, data: Any, first_row: int, finite: bool = True) -> tuple[dict[str, Any], int]:
        """({input name: 1-D array}, rows); `finite` refuses infinity in numeric columns.

        One row (a record, a row, a mapping of single values) is converted into this
        thread's reused 1-element arrays: valid until the thread's next call.
        """
        if type(data) is dict or isinstance(data, Mapping):
            if len(data) == len(self.names):
                try:
                    row = [data[name] for name in self.names]
                except KeyError:
                    row = None
                if row is not None:
                    with contextlib.suppress(NotOneRow):
                        return self._one_row(_singletons(row), first_row, finite), 1
            self._check_names(data.keys(), "the mapping")
            return self._columns([data[name] for name in self.names], first_row, finite)
        if type(data) is list and data:  # the fast paths of a 1-row request
            first = type(data[0])
            if first is dict and len(data) == 1:  # one record
                with contextlib.suppress(NotOneRow):
                    row = self._record(data[0], 0, first_row)
                    return self._one_row(row, first_row, finite), 1
            elif first in values_.CELLS and len(data) == len(self.names):  # one row
                with contextlib.suppress(NotOneRow):
                    return self._one_row(data, first_row, finite), 1
        if values_.is_series(data):  # one row of a DataFrame (frame.iloc[i]): a record
            return self.feeds(data.to_dict(), first_row, finite)
        frame = values_.frame_names(data)
        if frame is not None:
            lacking = [name for name in self.names if name not in frame]
            if lacking:
                raise InputError(
                    f"the DataFrame lacks column{'s' if len(lacking) > 1 else ''} "
                    f"{', '.join(repr(m) for m in lacking)}; the model takes "
                    f"{', '.join(self.names)}"
                )
            columns = [values_.frame_column(data, name) for name in self.names]
            return self._columns(columns, first_row, finite)
        rows = self._rows_of(data)
        if rows and isinstance(rows[0], Mapping):
            columns = self._from_records(rows, first_row)
        else:
            for index, row in enumerate(rows):
                self._check_width(row, index, first_row)
            if len(rows) == 1:
                try:
                    return self._one_row(rows[0], first_row, finite), 1
                except NotOneRow:
                    pass
            columns = [list(column) for column in zip(*rows, strict=True)] or [
                [] for _ in self.names
            ]
        return self._columns(columns, first_row, finite)

    def _rows_of(self, data: Any) -> Sequence[Any]:
        if isinstance(data, np.ndarray):
            if data.ndim == 1:
                data = data[None, :] if data.size else data.reshape(0, len(self.names))
            if data.ndim != 2:
                raise InputError(
                    f"expected a 1-D row or a 2-D batch of shape (n, {len(self.names)}), "
                    f"got an array of shape {data.shape}"
                )
            return data.tolist()
        if not isinstance(data, list | tuple):
            raise InputError(
                "expected a DataFrame, a mapping of column -> values, a list of records "
                f"(dicts) or a list of rows; got {type(data).__name__}"
            )
        if data and values_.is_cell(data[0]):  # one row
            return [data]
        return data

    def _record(self, record: Mapping[str, Any], index: int, first_row: int) -> list[Any]:
        if len(record) != len(self.names):
            self._check_names(record.keys(), f"row {index + first_row}")
        try:
            return [record[name] for name in self.names]
        except KeyError:
            self._check_names(record.keys(), f"row {index + first_row}")
            raise

    def _from_records(self, records: Sequence[Any], first_row: int) -> list[list[Any]]:
        width = len(self.names)
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise InputError(
                    f"row {index + first_row}: expected a record (an object of column -> "
                    f"value) like the first row, got {type(record).__name__}"
                )
            if len(record) != width:
                self._check_names(record.keys(), f"row {index + first_row}")
        try:
            return [[record[name] for record in records] for name in self.names]
        except KeyError:
            for index, record in enumerate(records):
                self._check_names(record.keys(), f"row {index + first_row}")
            raise

    def _check_names(self, given: Any, where: str) -> None:
        check_column_names(list(given), self.names, where)

    def _check_width(self, row: Any, index: int, first_row: int) -> None:
        if isinstance(row, Mapping):
            raise InputError(
                f"row {index + first_row}: expected a row (a list of values) like the first "
                "row, got a record"
            )
        if values_.is_cell(row) or len(row) != len(self.names):
            got = "one value" if values_.is_cell(row) else f"{len(row)}"
            raise InputError(
                f"row {index + first_row}: expected {len(self.names)} values "
                f"({', '.join(self.names)}), got {got}"
            )

    # Conversion and checks

    def _one_row(self, row: Sequence[Any], first_row: int, finite: bool) -> dict[str, Any]:
        """One row's feeds, in this thread's 1-element arrays (a 1-row request's fast path:
        a new array per column cost ~0.3 us, an assignment ~0.03 us). NotOneRow when a
        value is a column, not a cell."""
        try:
            feeds, fast = self._local.buffers
        except AttributeError:
            feeds, fast = self._local.buffers = self._buffers()
        na = self.na
        # strict=False: the callers checked the row's length (strict costs ~0.1 us here).
        for (categorical, fills, limit, buffer, index), value in zip(fast, row, strict=False):
            kind = type(value)
            if categorical:
                if kind is str and value and value not in na:
                    buffer[0] = value
                    continue
                if kind is bool:
                    buffer[0] = "true" if value else "false"
                    continue
            elif (kind is float or kind is int) and -limit <= value <= limit:
                buffer[0] = value  # finite and within the dtype's range
                continue
            elif value is None and fills:
                buffer[0] = math.nan
                continue
            buffer[0] = self.cell(value, index, first_row, finite)
        return feeds

    def _buffers(self) -> tuple[dict[str, np.ndarray], list[tuple[Any, ...]]]:
        feeds = {
            name: np.empty(1, dtype=object if categorical else self.dtype)
            for name, categorical, _ in self.specs
        }
        limit = float(np.finfo(self.dtype).max)
        fast = [
            (categorical, fills, limit, feeds[name], index)
            for index, (name, categorical, fills) in enumerate(self.specs)
        ]
        return feeds, fast

    def cell(self, value: Any, index: int, first_row: int, finite: bool) -> Any:
        """A cell the fast path did not take: converted and checked, or an InputError."""
        if not values_.is_cell(value):
            raise NotOneRow
        name, categorical, fills = self.specs[index]
        if categorical:
            level = values_.text(value, self.na)
            if not level and not fills:
                raise InputError(self._needs_value(first_row, name, value))
            return level
        try:
            number = values_.number(0, value, self.na)
        except BadCell as cell:
            raise InputError(self._bad(cell, first_row, name)) from None
        if number is not None and self.inf_missing and math.isinf(number):
            number = None  # training read infinity as missing too
        if number is None or number != number:  # missing (None or NaN)
            if not fills and finite:
                raise InputError(self._needs_value(first_row, name, value))
            return math.nan
        if finite and not math.isfinite(number):
            raise InputError(self._infinite(first_row, name, value))
        if abs(number) > float(np.finfo(self.dtype).max):
            if finite:
                raise InputError(self._too_big(first_row, name, value))
            return values_.cast_one(number, self.dtype)  # the general path's infinity
        return number

    def _columns(
        self, columns: list[Any], first_row: int, finite: bool
    ) -> tuple[dict[str, Any], int]:
        feeds: dict[str, Any] = {}
        for (name, categorical, fills), column in zip(self.specs, columns, strict=True):
            if values_.is_cell(column):
                column = [column]
            try:
                if categorical:
                    converted = values_.texts(column, self.na)
                else:
                    converted = values_.numbers(column, self.dtype, self.na)
            except BadCell as cell:
                raise InputError(self._bad(cell, first_row, name)) from None
            except ValueError as error:  # a 2-D column
                raise InputError(f"column {name!r}: {error}") from None
            feeds[name] = self._check_column(
                name, categorical, fills, converted, column, first_row, finite
            )
        lengths = {len(c) for c in feeds.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{n}: {len(c)}" for n, c in feeds.items())
            raise InputError(f"expected columns of equal length, got {sizes}")
        return feeds, lengths.pop()

    def _check_column(
        self,
        name: str,
        categorical: bool,
        fills: bool,
        converted: np.ndarray,
        original: Any,
        first_row: int,
        finite: bool,
    ) -> np.ndarray:
        """The column, once a missing value where the model has no fill and infinity are
        refused (infinity is missing when training read it so: an na_values token)."""
        if categorical:
            if not fills and len(converted):
                blank = values_.blanks(converted)
                if len(blank):
                    row = int(blank[0])
                    raise InputError(self._needs_value(row + first_row, name, original[row]))
            return converted
        if all_finite(converted):
            return converted
        if self.inf_missing:
            converted = np.where(np.isinf(converted), np.nan, converted)  # a copy: not theirs
        if not finite:
            return converted
        nan = np.isnan(converted)
        if not fills and nan.any():
            row = int(np.flatnonzero(nan)[0])
            raise InputError(self._needs_value(row + first_row, name, original[row]))
        if finite:
            bad = np.flatnonzero(~nan & ~np.isfinite(converted))
            if len(bad):
                row = int(bad[0])
                value = original[row]
                number = values_.number(row, value, self.na)
                word = self._infinite if number is None or math.isinf(number) else self._too_big
                raise InputError(word(row + first_row, name, value))
        return converted

    # Messages

    def _needs_value(self, row: int, name: str, value: Any) -> str:
        blank = value is None or (isinstance(value, float | np.floating) and math.isnan(value))
        shown = "" if blank else f" ({values_.shown(value)})"
        return (
            f"row {row}, column {name!r}: a missing value{shown}; the model was trained "
            f"with --missing {self.plan.missing}, so it has no fill for this column and "
            "needs a value"
        )

    def _bad(self, cell: BadCell, first_row: int, name: str) -> str:
        return (
            f"row {cell.index + first_row}, column {name!r}: expected {cell.expected}, "
            f"got {values_.shown(cell.value)}"
        )

    def _infinite(self, row: int, name: str, value: Any) -> str:
        return (
            f"row {row}, column {name!r}: expected a finite number, got {values_.shown(value)}; "
            "infinity is refused (a missing value is null or NaN)"
        )

    def _too_big(self, row: int, name: str, value: Any) -> str:
        return (
            f"row {row}, column {name!r}: {values_.shown(value)} is beyond the range of the "
            f"model's {self.dtype} (largest magnitude {float(np.finfo(self.dtype).max):g}); "
            "scale the input or use a float64 model"
        )

    def unknown_message(self, feeds: Mapping[str, Any], row: int, first_row: int) -> str:
        """Why row `row` (0-based) was refused: its first unknown level and the known ones."""
        for column in self.plan.categorical:
            level = str(feeds[column.name][row])
            if level and level not in self.known[column.name]:
                known = sorted(self.known[column.name])
                shown = ", ".join(repr(k) for k in known[:SHOWN_LEVELS])
                more = f", ... ({len(known)} in all)" if len(known) > SHOWN_LEVELS else ""
                return (
                    f"row {row + first_row}, column {column.name!r}: unknown level {level!r}; "
                    f"the model knows {shown}{more}. It was exported with --unknown-level "
                    "error; export it with --unknown-level reference to encode unknown "
                    f"levels as the reference level ({column.levels[0]!r})"
                )
        return f"row {row + first_row}: the model counted an unknown level"


def _singletons(row: list[Any]) -> list[Any]:
    """A mapping's values as one row: each value itself, or the one value of a 1-element
    list or tuple (`{"firm": ["GM"], ...}`, one row as columns); else `row` as it is."""
    if all(type(value) in (list, tuple) and len(value) == 1 for value in row):
        return [value[0] for value in row]
    return row
