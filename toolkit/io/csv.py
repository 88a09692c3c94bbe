"""CSV: pyarrow's streaming reader over a byte range of the file, parsed block by block.

Rows are numbered as the user sees them in the file: 1-based, the header is row 1, blank
lines and newlines inside quoted cells counted. pyarrow's errors carry no row numbers, so
on the error path only the file is read again to find the row, the column and the value.
Under torchrun a piece is the lines whose first byte lies in the process's byte range.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import DataError
from toolkit.io.shards import Piece, Shard, row_text

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "csv"
SUFFIXES = (".csv",)
MAGIC = b""  # text: no magic bytes
STREAMED = True
# pyarrow parses CSV in blocks of this many bytes, with dozens of blocks in flight.
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
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    shard = piece.shard
    read_options, convert_options = csv_options(floats, piece, text)
    digest = hashlib.sha256() if piece.whole and hashed is not None else None
    stream = _ByteRange(shard.path, piece.start, piece.stop, bar, digest)
    try:
        try:
            # open_csv already parses the first block.
            reader = pa_csv.open_csv(
                stream, read_options=read_options, convert_options=convert_options
            )
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    if digest is not None and hashed is not None and stream.at_end():
                        hashed[shard.path] = digest.hexdigest()
                    return
                for start in range(0, batch.num_rows, rows):
                    yield batch.slice(start, rows)
        except pa.ArrowInvalid as error:
            raise _explain(piece, str(error), floats) from error
    finally:
        stream.close()


def row_of(piece: Piece, index: int) -> int | None:
    return csv_locator(piece.shard.path, piece.shard.name, piece.start)(index)


def no_rows(shard: Shard, columns: Sequence[str]) -> str:
    return f"found the header ({', '.join(shard.columns)}) but no data rows."


def csv_options(
    columns: Sequence[str], piece: Piece | None = None, text: Sequence[str] = ()
) -> tuple[Any, Any]:
    """The pyarrow ReadOptions and ConvertOptions the reader parses CSV with.

    Blocks of CSV_BLOCK_BYTES; only `columns` (converted to float64) and `text` (kept as
    text). A piece that starts after the header gets the header's names instead.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    names = None if piece is None or piece.start == 0 else list(piece.shard.columns)
    read_options = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, column_names=names)
    convert_options = pa_csv.ConvertOptions(
        column_types={column: pa.float64() for column in columns}
        | {column: pa.string() for column in text},
        include_columns=[*columns, *text],
        null_values=[""],  # only a blank cell is missing; 'NA' or 'nan' get their own errors
        strings_can_be_null=False,  # a blank text cell is the empty string
        quoted_strings_can_be_null=True,
    )
    return read_options, convert_options


def csv_header(path: Path, name: str) -> list[str]:
    """The header's column names; a blank or repeated name is refused."""
    first = next(_csv_rows(path, name), None)
    if first is None:
        raise DataError(f"{name}: the file is empty; expected a header row naming the columns.")
    columns = [cell.strip() for cell in first[1]]
    for position, column in enumerate(columns, start=1):
        if not column:
            raise DataError(
                f"{name}, row 1: header cell {position} is blank; every column needs a name."
            )
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise DataError(f"{name}, row 1: column name {duplicates[0]!r} appears more than once.")
    return columns


def csv_locator(path: Path, name: str, start: int = 0) -> Callable[[int], int | None]:
    """Maps data row `index` of the lines from byte `start` to its row in the file."""

    def locate(index: int) -> int | None:
        rows = _csv_rows(path, name, start)
        if start == 0:
            next(rows, None)  # the header
        for i, (line, _cells) in enumerate(rows):
            if i == index:
                return line
        return None

    return locate


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
    """Bytes [start, stop) of a file (stop -1: to its end), with an optional tqdm bar to
    advance and hashlib digest to update (hashlib drops the GIL on large blocks)."""

    def __init__(
        self, path: Path, start: int = 0, stop: int = -1, bar: Any = None, digest: Any = None
    ) -> None:
        self._file = path.open("rb", buffering=0)
        self._file.seek(start)
        self._left = math.inf if stop == -1 else stop - start
        self._bar = bar
        self._digest = digest
        self._ended = False

    def at_end(self) -> bool:
        """Whether every byte of the range was read."""
        return self._ended or self._left == 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._left < len(view):
            view = view[: int(self._left)]
        count = self._file.readinto(view) or 0
        self._left -= count
        self._ended = self._ended or (count == 0 and len(view) > 0)
        if self._digest is not None:
            self._digest.update(view[:count])
        if self._bar is not None:
            self._bar.update(count)
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


# ---------------------------------------------------------------------------------------
# The error path: find the row, the column and the value pyarrow's message leaves out.


def _csv_rows(path: Path, name: str, start: int = 0) -> Iterator[tuple[int, list[str]]]:
    """(file row number, cells) for each non-empty row from byte `start` (header included at 0).

    Used for the header and, on the error path only, to map pyarrow's data-row
    indices to the rows a user sees (empty lines skipped, quoted newlines counted).
    """
    try:
        lines_before = _count_newlines(path, start)
        with path.open("rb") as raw:
            raw.seek(start)
            encoding = "utf-8-sig" if start == 0 else "utf-8"
            handle = io.TextIOWrapper(raw, encoding=encoding, newline="")
            reader = csv.reader(handle)
            for cells in reader:
                if cells:
                    yield lines_before + reader.line_num, cells
    except UnicodeDecodeError as error:
        raise DataError(
            f"{name}: is not UTF-8 text ({error.reason} at byte {start + error.start})."
        ) from error
    except csv.Error as error:
        raise DataError(f"{name}: is not a readable CSV file ({error}).") from error


def _count_newlines(path: Path, stop: int) -> int:
    count, left = 0, stop
    with path.open("rb") as handle:
        while left > 0 and (block := handle.read(min(left, 1 << 24))):
            count += block.count(b"\n")
            left -= len(block)
    return count


_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")
_NOT_A_NUMBER = re.compile(r"In CSV column #(\d+): .*invalid value '(.*)'", re.DOTALL)


def _explain(piece: Piece, message: str, floats: Sequence[str]) -> DataError:
    """Turn pyarrow's message (which lacks row numbers) into one naming row, column and value.

    Only the piece's lines are searched: the ones this process reads.
    """
    shard = piece.shard
    if _RAGGED.search(message):
        rows = _csv_rows(shard.path, shard.name, piece.start)
        header = next(rows)[1] if piece.start == 0 else list(shard.columns)
        for line, cells in rows:
            if len(cells) != len(header):
                return DataError(
                    f"{shard.name}, row {line}: found {len(cells)} values, expected "
                    f"{len(header)} (one per header column: {', '.join(header)})."
                )
    match = _NOT_A_NUMBER.search(message)
    if match:
        # pyarrow numbers the file's columns; look there first, then in every other one.
        position = int(match.group(1))
        named = shard.columns[position] if position < len(shard.columns) else None
        first = [named] if named in floats else []
        for candidate in first + [column for column in floats if column != named]:
            index, value = _first_non_number(piece, candidate)
            if index is not None:
                row = row_text(csv_locator(shard.path, shard.name, piece.start)(index))
                return DataError(
                    f"{shard.name}, row {row}, column {candidate!r}: "
                    f"expected a number, got {value!r}."
                )
    return DataError(f"{shard.name}: cannot be read as CSV ({message.strip()}).")


def _first_non_number(piece: Piece, column: str) -> tuple[int | None, str | None]:
    """Data-row index and text of the first cell in `column` that is not a float64.

    Blank cells are skipped (they are reported as blank, not here); like pyarrow's
    conversion, surrounding spaces are ignored.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    convert = pa_csv.ConvertOptions(
        column_types={column: pa.string()},
        include_columns=[column],
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    stream = _ByteRange(piece.shard.path, piece.start, piece.stop)
    read_options = csv_options([column], piece)[0]
    offset = 0
    with stream, pa_csv.open_csv(stream, read_options=read_options, convert_options=convert) as rd:
        for batch in rd:
            strings = batch.column(0)
            try:
                pc.cast(pc.utf8_trim_whitespace(strings), pa.float64())
            except pa.ArrowInvalid:
                for i, value in enumerate(strings.to_pylist()):
                    try:
                        pc.cast(pa.array([value and value.strip()], pa.string()), pa.float64())
                    except pa.ArrowInvalid:
                        return offset + i, value
            offset += len(strings)
    return None, None
