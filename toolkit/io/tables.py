"""Training data already in memory, read as files are: a table, or numpy arrays.

`open_table` (a pyarrow Table, or a pandas or polars DataFrame, which pyarrow reads as
one) and `open_arrays` (numpy features and targets) return a `DataSource`, so training
takes in-memory data through the very path it takes files: `toolkit.train(data=table)`
and the estimator `toolkit.LinearRegressor` both come here. Nothing is copied up front:
each chunk becomes a float64 block [features | targets] when it is read, and is checked
as a file's chunk is (a blank cell, NaN or infinity is an error naming the row and
column). Rows are counted from 0 in messages, as numpy and pandas count them.

In-memory data has no SHA-256 (`sha256()` is ""): the checkpoint's and model card's
digest names a file, and hashing the rows would cost more than fitting them (SHA-256 runs
at about 1.7 GB/s; a float64 copy of 1,000,000 x 100 values is 800 MB).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from toolkit.defaults import CHUNK_ROWS
from toolkit.errors import DataError, UsageError
from toolkit.io.blocks import PREFETCH_BLOCKS, Prefetch, check_finite, check_weights, float_block
from toolkit.io.sources import DataSource, select_columns, target_note

if TYPE_CHECKING:
    import pyarrow as pa

    from toolkit.io.tables_plan import TableOptions

MEMORY_NAME = "<in-memory table>"
ARRAYS_NAME = "<in-memory arrays>"


@dataclass(frozen=True)
class RowRange:
    """The rows [start, stop) of an in-memory source that one process reads."""

    start: int
    stop: int
    whole: bool = True  # every row of the source


@dataclass
class MemorySource(DataSource):
    """A `DataSource` whose rows are in memory: `read_rows(start, stop)` gives a checked block."""

    n_rows: int = 0
    read_rows: Callable[[int, int], np.ndarray] | None = None
    table: Any = None  # the pyarrow Table (open_table), or None: arrays (open_arrays)
    in_memory: ClassVar[bool] = True

    def pieces(self, rank: int = 0, world: int = 1) -> list[RowRange]:  # type: ignore[override]
        """What process `rank` of `world` reads: a contiguous 1/world of the rows."""
        low, high = self.n_rows * rank // world, self.n_rows * (rank + 1) // world
        return [RowRange(low, high, low == 0 and high == self.n_rows)] if low < high else []

    def start_blocks(  # type: ignore[override]
        self,
        pieces: Sequence[RowRange] | None = None,
        rows: int = CHUNK_ROWS,
        progress: bool = False,
        depth: int = PREFETCH_BLOCKS,
    ) -> Prefetch:
        """Checked float64 blocks [features | targets] of at most `rows` rows, in order
        (what `blocks` yields), made up to `depth` blocks ahead in a background thread, as
        a file's are; there is nothing to show a progress bar for."""
        if self.n_rows == 0:
            raise DataError(f"{self.name}: has columns ({', '.join(self.columns)}) but no rows.")
        pieces = self.pieces() if pieces is None else pieces
        if self.planned:
            from toolkit.io.planned import Dropped, planned_blocks

            self.dropped = Dropped()
            return Prefetch(planned_blocks(self, pieces, rows), depth)
        return Prefetch(self._ranges(pieces, rows), depth)

    def _ranges(self, pieces: Sequence[RowRange], rows: int) -> Iterator[np.ndarray]:
        assert self.read_rows is not None  # set by open_table and open_arrays
        for piece in pieces:
            for start in range(piece.start, piece.stop, rows):
                try:
                    yield self.read_rows(start, min(start + rows, piece.stop))
                except DataError as error:
                    if ": blank cell; " not in str(error):
                        raise
                    raise self.missing_error(str(error)) from error

    def raw_batches(  # type: ignore[override]
        self,
        pieces: Sequence[RowRange],
        kinds: Sequence[Any],
        rows: int = CHUNK_ROWS,
        na_values: Sequence[str] = (),
        bar: Any = None,
    ) -> Iterator[Any]:
        """Batches of the raw `kinds` columns (`.data`, `.name`, `.row(index)`), in order."""
        import pyarrow as pa

        table = self.table if self.table is not None else self._arrays_table()
        names = [kind.name for kind in kinds]
        for piece in pieces:
            for start in range(piece.start, piece.stop, rows):
                part = table.slice(start, min(rows, piece.stop - start)).select(names)
                data = pa.record_batch(
                    [column.combine_chunks() for column in part.columns], names=names
                )
                yield MemoryBatch(data, self.name, start)

    def arrow_schemas(
        self, names: Sequence[str], na_values: Sequence[str] = ()
    ) -> list[tuple[str, Any, bool]]:
        """The table's own schema (arrays: float64 columns)."""
        import pyarrow as pa

        if self.table is not None:
            return [(self.name, self.table.schema, False)]
        return [(self.name, pa.schema([(n, pa.float64()) for n in self.columns]), False)]

    def _arrays_table(self) -> pa.Table:
        """open_arrays' data as a Table of float64 columns (for a plan's missing values)."""
        import pyarrow as pa

        assert self.read_rows is not None
        block = np.ascontiguousarray(self.read_rows(0, self.n_rows).T)
        return pa.table(dict(zip(self.columns, block, strict=True)))

    def sha256(self, stop: threading.Event | None = None) -> str:
        """No digest for data in memory (see the module's docstring): ""."""
        return ""

    def hashed_while_read(self, pieces: Sequence[RowRange]) -> bool:  # type: ignore[override]
        """True: there is nothing to hash in a thread."""
        return True


@dataclass(frozen=True)
class MemoryBatch:
    """Rows [start, start + len) of an in-memory table's raw columns."""

    data: pa.RecordBatch
    name: str
    start: int

    def row(self, index: int) -> int:
        """Rows of data in memory are counted from 0, as numpy and pandas count them."""
        return self.start + index


def open_arrays(
    features: np.ndarray,
    targets: np.ndarray,
    feature_names: Sequence[str],
    target_names: Sequence[str],
    name: str = ARRAYS_NAME,
    checked: bool = False,
    weights: np.ndarray | None = None,
    weight_name: str = "sample_weight",
) -> MemorySource:
    """Numeric numpy arrays (n, d) and (n,) or (n, t) as a DataSource; nothing is copied here.

    `checked`: the caller has already refused NaN and infinity in both (scikit-learn's
    `validate_data` does), so the chunks are not scanned for them again. `weights` (n,):
    each row's weight (weighted least squares), the blocks' last column, `weight_name`.
    """
    targets = targets.reshape(len(targets), -1)
    d, t = features.shape[1], targets.shape[1]
    if len(features) != len(targets) or (d, t) != (len(feature_names), len(target_names)):
        raise UsageError(
            f"features of shape {features.shape} and targets of shape {targets.shape} do not "
            f"match {d} feature and {t} target names; expected the same number of rows."
        )
    columns = [*feature_names, *target_names] + ([weight_name] if weights is not None else [])

    def read_rows(start: int, stop: int) -> np.ndarray:
        block = np.empty((stop - start, len(columns)))
        block[:, :d], block[:, d : d + t] = features[start:stop], targets[start:stop]
        if weights is not None:
            block[:, -1] = weights[start:stop]
        if not checked or weights is not None:
            check_finite(block, columns, name, lambda row: start + row)
        if weights is not None:
            check_weights(block[:, -1], name, lambda row: start + row, weight_name)
        return block

    source = MemorySource(
        name, [], list(feature_names), list(target_names), n_rows=len(features), read_rows=read_rows
    )
    source.weight_name = weight_name if weights is not None else None
    return source


def open_table(
    data: Any,
    targets: Sequence[str] = (),
    features: Sequence[str] = (),
    name: str = MEMORY_NAME,
    weight: str | None = None,
    options: TableOptions | None = None,
) -> MemorySource:
    """A table in memory as a DataSource, its columns picked as a file's are (`open_source`).

    `data` is a pyarrow Table or RecordBatch, a pandas DataFrame (its index is not a
    column), or anything else `pyarrow.table` takes: a polars DataFrame (without a copy,
    through the Arrow C stream interface), a dict of columns. `options`: as for
    `open_source` (text, boolean, dictionary and categorical features accepted; pandas
    and polars categoricals arrive as dictionaries).
    """
    import pyarrow as pa

    table = as_table(data)
    _check_names(table.column_names, name)
    feature_names, target_names = select_columns(
        table.column_names, targets, features, name, weight=weight
    )
    columns = feature_names + target_names + ([weight] if weight is not None else [])
    _check_numeric(table, columns if options is None else columns[len(feature_names) :], name)

    def read_rows(start: int, stop: int) -> np.ndarray:
        part = table.slice(start, stop - start)
        arrays = [part.column(c).combine_chunks().cast(pa.float64(), safe=False) for c in columns]
        batch = pa.record_batch(arrays, names=columns)
        block = float_block(batch, name, lambda row: start + row, finite=True)
        if weight is not None:
            check_weights(block[:, -1], name, lambda row: start + row, weight)
        return block

    notes = target_note(targets, target_names)
    source = MemorySource(
        name,
        [],
        feature_names,
        target_names,
        notes,
        weight,
        n_rows=table.num_rows,
        read_rows=read_rows,
        table=table,
    )
    if options is not None:
        source.kinds(options)  # refuses unreadable types and impossible --categorical now
    return source


def as_table(data: Any) -> pa.Table:
    """`data` as a pyarrow Table (see `open_table`); anything else is a usage error."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if type(data).__module__.split(".")[0] == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    try:
        return pa.table(data)
    except (TypeError, ValueError, pa.ArrowException) as error:
        raise UsageError(
            f"data of type {type(data).__name__!r} is neither a path nor a table; expected a "
            "file, folder or glob, a pyarrow Table, or a pandas or polars DataFrame (for "
            "numpy arrays use toolkit.LinearRegressor)."
        ) from error


def _check_names(columns: Sequence[str], name: str) -> None:
    """Columns are picked by name: every name must be present and used once."""
    for position, column in enumerate(columns, start=1):
        if not str(column).strip():
            raise DataError(f"{name}: column {position} has a blank name; name every column.")
        if columns.count(column) > 1:
            raise DataError(
                f"{name}: column name {column!r} appears {columns.count(column)} times; "
                "toolkit selects columns by name. Rename the copies."
            )


def _check_numeric(table: pa.Table, columns: Sequence[str], name: str) -> None:
    """Columns read as numbers must hold integers or floats, as in a Parquet file."""
    import pyarrow as pa

    for column in columns:
        kind = table.schema.field(column).type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            continue
        values = table.column(column)
        first = values[0].as_py() if len(values) else None
        raise DataError(
            f"{name}, column {column!r}: has type {kind}; expected a numeric column "
            f"(first value: {first!r})."
        )
