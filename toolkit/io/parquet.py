"""Parquet: row batches from pyarrow, numeric columns cast to float64.

Parquet has no header row, so data row 1 is row 1. Under torchrun a piece is a run of
row groups: those whose start, placed proportionally in the file's bytes, lies in the
process's byte range. Whatever pyarrow raises on a damaged file (a bad footer, corrupt
pages, a truncated row group) becomes a DataError naming the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import DataError
from toolkit.io.shards import Piece, Shard

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "parquet"
SUFFIXES = (".parquet", ".pq")
MAGIC = b"PAR1"
STREAMED = False  # read by row group through the file's footer, not front to back
# Bytes of a column chunk read ahead while its pages are decoded.
PAGE_BUFFER_BYTES = 1 << 20


def columns(path: Path, name: str) -> list[str]:
    import pyarrow.parquet as pq

    with _reading(name):
        schema = pq.read_schema(path)
    names = list(schema.names)
    if not names:
        raise DataError(f"{name}: the Parquet file has no columns.")
    for position, column in enumerate(names, start=1):
        if not column.strip():
            raise DataError(f"{name}: column {position} has a blank name; name every column.")
        if names.count(column) > 1:
            raise DataError(
                f"{name}: column name {column!r} appears {names.count(column)} times (Parquet "
                "allows it; toolkit selects columns by name). Rename the copies."
            )
    return names


def check(shard: Shard, floats: Sequence[str]) -> None:
    """Columns to be read as numbers must be stored as integers or floats."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _reading(shard.name):
        schema = pq.read_schema(shard.path)
        for column_name in floats:
            kind = schema.field(column_name).type
            if pa.types.is_integer(kind) or pa.types.is_floating(kind):
                continue
            file = pq.ParquetFile(shard.path)
            first = next(file.iter_batches(batch_size=1, columns=[column_name]), None)
            value = first.column(0)[0].as_py() if first is not None and first.num_rows else None
            raise DataError(
                f"{shard.name}, column {column_name!r}: has type {kind}; expected a numeric "
                f"column (first value: {value!r})."
            )


@contextlib.contextmanager
def _reading(name: str) -> Iterator[None]:
    """pyarrow's errors about a damaged or foreign file, as a DataError naming it."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowException, OSError) as error:
        message = str(error).strip().rstrip(".")
        raise DataError(f"{name}: is not a readable Parquet file ({message}).") from error


def cut(shard: Shard, begin: int, end: int) -> Piece | None:
    """The row groups whose start, placed proportionally in the file's bytes, is in [begin, end)."""
    import pyarrow.parquet as pq

    with _reading(shard.name):
        metadata = pq.ParquetFile(shard.path).metadata
    sizes = [metadata.row_group(k).total_byte_size for k in range(metadata.num_row_groups)]
    rows = [metadata.row_group(k).num_rows for k in range(metadata.num_row_groups)]
    total = max(sum(sizes), 1)
    groups, first_row, before = [], 0, 0
    for k, size in enumerate(sizes):
        position = shard.size * before // total
        if begin <= position < end:
            if not groups:
                first_row = sum(rows[:k])
            groups.append(k)
        before += size
    if not groups:
        return None
    if len(groups) == len(sizes):
        return Piece(shard)
    return Piece(shard, row_groups=tuple(groups), first_row=first_row)


def batches(
    piece: Piece,
    floats: Sequence[str],
    rows: int,
    *,
    text: Sequence[str] = (),
    bar: Any = None,
    hashed: dict[Path, str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """`floats` cast to float64 (nulls stay nulls), then `text` columns as stored."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [*floats, *text]
    with _reading(piece.shard.name):
        # Pages stream through a small buffer instead of whole column chunks being read
        # at once: memory follows `rows`, not the row group (a 1M-row group of 21 float
        # columns: 201 MiB peak instead of 513 MiB, and faster).
        file = pq.ParquetFile(piece.shard.path, pre_buffer=False, buffer_size=PAGE_BUFFER_BYTES)
        groups = piece.row_groups
        batches = file.iter_batches(
            batch_size=rows,
            row_groups=list(range(file.num_row_groups)) if groups is None else list(groups),
            columns=names,
        )
        for batch in batches:
            # Integers beyond 2**53 round to the nearest float64, as a CSV cell of them does.
            numbers = [batch.column(name).cast(pa.float64(), safe=False) for name in floats]
            yield pa.record_batch(numbers + [batch.column(name) for name in text], names=names)


def row_of(piece: Piece, index: int) -> int | None:
    return piece.first_row + index + 1  # no header row: data row 1 is row 1


def no_rows(shard: Shard, columns: Sequence[str]) -> str:
    return f"has columns ({', '.join(columns)}) but no data rows."


def raw_batches(
    piece: Piece,
    types: dict[str, Any],
    rows: int,
    *,
    na_values: Sequence[str] = (),
    categorical: Sequence[str] = (),
    bar: Any = None,
    hashed: dict[Path, str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """The piece's `types` columns as stored (the encoder normalises them), in that order."""
    import pyarrow.parquet as pq

    names = list(types)
    with _reading(piece.shard.name):
        file = pq.ParquetFile(piece.shard.path, pre_buffer=False, buffer_size=PAGE_BUFFER_BYTES)
        groups = piece.row_groups
        yield from file.iter_batches(
            batch_size=rows,
            row_groups=list(range(file.num_row_groups)) if groups is None else list(groups),
            columns=names,
        )
