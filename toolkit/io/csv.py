"""CSV: a byte range of the file in slices cut at line ends, each parsed by pyarrow's
threads (toolkit/io/csvslices.py).

Rows are numbered as the user sees them in the file: 1-based, the header is row 1, blank
lines and newlines inside quoted cells counted. pyarrow's errors carry no row numbers, so
on the error path only the file is read again (toolkit/io/csvrows.py) to find the row, the
column and the value. Header names are stripped of surrounding spaces (`x1, x2, y` names
x1, x2 and y). Under torchrun a piece is the lines whose first byte lies in the process's
byte range.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import DataError
from toolkit.io import csvrows, csvslices
from toolkit.io.shards import Piece, Shard

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "csv"
SUFFIXES = (".csv",)
MAGIC = b""  # text: no magic bytes
STREAMED = True
# pyarrow parses CSV in blocks of this many bytes, a slice's blocks in parallel.
# Measured on a 776 MB file of 33 columns: 1 MiB blocks peak at 123 MiB RSS and read in
# 1.8 s; 17 MiB blocks peak at 950 MiB and take 4.3 s. Bigger is not faster.
CSV_BLOCK_BYTES = 1 << 20


def columns(path: Path, name: str) -> list[str]:
    return csv_header(path, name)


def check(shard: Shard, floats: Sequence[str]) -> None:
    """Nothing to refuse up front: a CSV cell is text until it is converted."""


def cut(shard: Shard, begin: int, end: int) -> Piece | None:
    """The lines whose first byte lies in [begin, end)."""
    start, stop = _line_start(shard.path, begin), _line_start(shard.path, end)
    if start >= stop:
        return None
    return Piece(shard, start=start, stop=-1 if stop >= shard.size else stop)


def batches(
    piece: Piece,
    floats: Sequence[str],
    rows: int,
    *,
    text: Sequence[str] = (),
    bar: Any = None,
    hashed: dict[Path, str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """The piece's rows; a whole file is hashed into `hashed` (when given) as its bytes go by."""
    read_options, convert_options = csv_options(floats, piece, text)
    yield from _stream(
        piece,
        read_options,
        convert_options,
        [*floats, *text],
        rows,
        bar,
        hashed,
        lambda part, message: _explain(part, message, floats, text),
    )


def raw_batches(
    piece: Piece,
    types: Mapping[str, Any],
    rows: int,
    *,
    na_values: Sequence[str] = (),
    categorical: Sequence[str] = (),
    bar: Any = None,
    hashed: dict[Path, str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """The piece's `types` columns (name -> Arrow type), in that order: blank cells and the
    `na_values` tokens are nulls, in text columns too. A cell that is not a number in a
    number column is an error that, for the `categorical`-able features, suggests
    --categorical."""
    import pyarrow as pa

    names = list(types)
    floats = [n for n in names if pa.types.is_floating(types[n])]
    others = [n for n in names if n not in floats]
    read_options, convert = csv_options(floats, piece, others)
    written = dict(zip([*floats, *others], convert.include_columns, strict=True))
    convert.column_types = {written[n]: types[n] for n in names}
    convert.include_columns = [written[n] for n in names]
    convert.null_values = ["", *na_values]
    convert.strings_can_be_null = True
    explain = lambda part, message: _explain(  # noqa: E731
        part,
        message,
        [*floats, *[n for n in others if pa.types.is_integer(types[n])]],
        (),
        categorical,
    )
    yield from _stream(piece, read_options, convert, names, rows, bar, hashed, explain)


def _stream(
    piece: Piece,
    read_options: Any,
    convert_options: Any,
    names: Sequence[str],
    rows: int,
    bar: Any,
    hashed: dict[Path, str] | None,
    explain: Callable[[Piece, str], DataError],
) -> Iterator[pa.RecordBatch]:
    """The piece's batches, slice by slice. A slice that pyarrow refuses is searched by
    `explain(slice, message)` for the row to name: the slices before it were read, so the
    first bad row is in it (a search of the whole piece would take minutes on GBs)."""
    import pyarrow as pa

    shard = piece.shard
    # The header's names may carry spaces: batches get the stripped `names`.
    digest = hashlib.sha256() if piece.whole and hashed is not None else None
    start = piece.start
    try:
        slices = csvslices.read_slices(shard.path, piece.start, piece.stop, bar, digest)
        for number, data in enumerate(slices):
            if number == 1:  # the lines after the first slice lack the header
                read_options = csvslices.later_options(read_options, shard)
            stop = start + len(data)
            try:
                yield from csvslices.parsed_batches(
                    data, read_options, convert_options, names, rows
                )
            except pa.ArrowInvalid as error:
                part = Piece(shard, start=start, stop=-1 if stop >= shard.size else stop)
                raise explain(part, str(error)) from error
            start = stop
    except pa.ArrowException as error:  # not a row's fault (a header pyarrow reads apart)
        message = str(error).strip()
        raise DataError(f"{shard.name}: cannot be read as CSV ({message}).") from error
    if digest is not None and hashed is not None:
        hashed[shard.path] = digest.hexdigest()


def row_of(piece: Piece, index: int) -> int | None:
    return csv_locator(piece.shard.path, piece.shard.name, piece.start)(index)


def no_rows(shard: Shard, columns: Sequence[str]) -> str:
    return f"found the header ({', '.join(shard.columns)}) but no data rows."


def csv_options(
    columns: Sequence[str], piece: Piece | None = None, text: Sequence[str] = ()
) -> tuple[Any, Any]:
    """The pyarrow ReadOptions and ConvertOptions the reader parses CSV with.

    Blocks of CSV_BLOCK_BYTES; only `columns` (converted to float64) and `text` (kept as
    text), in that order. A piece that starts after the header gets the header's names
    instead; one that starts with it selects the names as written there (pyarrow does not
    strip the spaces around them).
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    names, written = None, {column: column for column in [*columns, *text]}
    if piece is not None and piece.start > 0:
        names = list(piece.shard.columns)
    elif piece is not None:
        raw = csvrows.header(piece.shard.path, piece.shard.name)
        written.update((_clean(cell), cell) for cell in raw if _clean(cell) in written)
    read_options = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, column_names=names)
    convert_options = pa_csv.ConvertOptions(
        column_types={written[column]: pa.float64() for column in columns}
        | {written[column]: pa.string() for column in text},
        include_columns=[written[column] for column in [*columns, *text]],
        null_values=[""],  # only a blank cell is missing; 'NA' or 'nan' get their own errors
        strings_can_be_null=False,  # a blank text cell is the empty string
        quoted_strings_can_be_null=True,
    )
    return read_options, convert_options


def csv_header(path: Path, name: str) -> list[str]:
    """The header's column names, stripped of surrounding spaces (`_clean`); blank or
    repeated names and names that are not UTF-8 are refused."""
    columns = [_clean(cell) for cell in csvrows.header(path, name)]
    for position, column in enumerate(columns, start=1):
        if not column:
            raise DataError(
                f"{name}, row 1: header cell {position} is blank; every column needs a name."
            )
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise DataError(f"{name}, row 1: column name {duplicates[0]!r} appears more than once.")
    return columns


def _clean(cell: str) -> str:
    """A header cell as a column name: without the spaces (and stray byte-order marks,
    which an editor may leave after the first) around it."""
    return cell.strip().strip("\ufeff").strip()


def csv_locator(path: Path, name: str, start: int = 0) -> Callable[[int], int | None]:
    """Maps data row `index` of the lines from byte `start` to its row in the file."""
    return csvrows.locator(path, name, start)


def _line_start(path: Path, position: int) -> int:
    """The first line start at or after `position`: 0, or just past a newline."""
    if position == 0:
        return 0
    with path.open("rb") as handle:
        handle.seek(position - 1)
        while block := handle.read(1 << 16):
            newline = block.find(b"\n")
            if newline >= 0:
                return handle.tell() - len(block) + newline + 1
    return path.stat().st_size


class _ByteRange(io.RawIOBase):
    """Bytes [start, stop) of a file (stop -1: to its end): one piece for the streaming
    reader of the error path."""

    def __init__(self, path: Path, start: int = 0, stop: int = -1) -> None:
        self._file = path.open("rb", buffering=0)
        self._file.seek(start)
        self._left = math.inf if stop == -1 else stop - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._left < len(view):
            view = view[: int(self._left)]
        count = self._file.readinto(view) or 0
        self._left -= count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


# ---------------------------------------------------------------------------------------
# The error path: find the row, the column and the value pyarrow's message leaves out.

_NOT_A_NUMBER = re.compile(r"In CSV column #(\d+): .*invalid value '(.*)'", re.DOTALL)


def _explain(
    piece: Piece,
    message: str,
    floats: Sequence[str],
    text: Sequence[str] = (),
    categorical: Sequence[str] = (),
) -> DataError:
    """Turn pyarrow's message (which lacks row numbers) into one naming row, column and value.

    Only the piece's lines are searched: the ones this process reads. A bad number is
    looked for with pyarrow first (fast); anything else, or a cell pyarrow cannot even
    read as text, by reading the rows with Python's csv module.
    """
    import pyarrow as pa

    shard = piece.shard
    match = _NOT_A_NUMBER.search(message)
    if match:
        # pyarrow numbers the file's columns; look there first, then in every other one.
        position = int(match.group(1))
        named = shard.columns[position] if position < len(shard.columns) else None
        first = [named] if named in floats else []
        try:
            for candidate in first + [column for column in floats if column != named]:
                index, value = _first_non_number(piece, candidate)
                if index is not None:
                    row = csv_locator(shard.path, shard.name, piece.start)(index)
                    error = csvrows.not_a_number(shard.name, row, candidate, value or "")
                    return _hinted(error, candidate, categorical)
        except pa.ArrowInvalid:  # e.g. a cell that is not UTF-8: the slow path names it
            pass
    found = csvrows.first_problem(piece, shard.columns, floats, text)
    if found is not None:
        column = next(
            (c for c in categorical if f"column {c!r}: expected a number" in str(found)), ""
        )
        return _hinted(found, column, categorical)
    return DataError(f"{shard.name}: cannot be read as CSV ({message.strip()}).")


def hint_categorical(error: DataError, features: Sequence[str]) -> DataError | None:
    """`error` with the --categorical hint when it refuses a text cell of one of
    `features` (read as numbers because the start of the file held numbers); else None."""
    column = next((c for c in features if f"column {c!r}: expected a number" in str(error)), "")
    return _hinted(error, column, features) if column else None


def _hinted(error: DataError, column: str, categorical: Sequence[str]) -> DataError:
    """`error` about a cell of `column` that is not a number, with the hint to read the
    column as categories when it may be one."""
    if column not in categorical:
        return error
    return DataError(
        f"{error} If {column!r} holds categories, name it with --categorical {column} "
        "(its type was inferred from the start of the file)."
    )


def _first_non_number(piece: Piece, column: str) -> tuple[int | None, str | None]:
    """Data-row index and text of the first cell in `column` that is not a float64.

    Blank cells are skipped (they are reported as blank, not here); like pyarrow's
    conversion, spaces and tabs around a number are ignored (other whitespace is not).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    read_options, convert = csv_options([], piece, [column])
    convert.strings_can_be_null = True
    stream = _ByteRange(piece.shard.path, piece.start, piece.stop)
    offset = 0
    with stream, pa_csv.open_csv(stream, read_options=read_options, convert_options=convert) as rd:
        for batch in rd:
            strings = batch.column(0)
            try:
                pc.cast(pc.utf8_trim(strings, characters=" \t"), pa.float64())
            except pa.ArrowInvalid:
                for i, value in enumerate(strings.to_pylist()):
                    try:
                        trimmed = value and value.strip(" \t")
                        pc.cast(pa.array([trimmed], pa.string()), pa.float64())
                    except pa.ArrowInvalid:
                        return offset + i, value
            offset += len(strings)
    return None, None
