"""CSV as a user sees it: the header, rows numbered as in the file, and what went wrong.

pyarrow parses CSV fast but its errors carry no row numbers. Python's csv module reads the
file again, on the error path only (and for the header), to find the row, the column and
the value. Rows are numbered from the line they start on: 1-based, the header is row 1,
blank lines and newlines inside quoted cells counted. Bytes that are not UTF-8 are kept
(as surrogate escapes) so that the cell holding them can be named, not just a byte offset.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from toolkit.errors import DataError
from toolkit.io.shards import Piece, row_text

# Bytes that are not UTF-8, as Python's surrogateescape error handler keeps them.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
# Byte-order marks of encodings that are not UTF-8.
_OTHER_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}
UTF8_REMEDY = "save the file as UTF-8"


def csv_rows(path: Path, name: str, start: int = 0) -> Iterator[tuple[int, list[str]]]:
    """(the row's first line in the file, its cells) for each non-empty row from byte `start`.

    At `start` 0 the header is the first row. Cells may hold surrogate escapes where the
    file's bytes are not UTF-8 (see `undecodable`).
    """
    try:
        lines_before = _count_newlines(path, start)
        with path.open("rb") as raw:
            raw.seek(start)
            encoding = "utf-8-sig" if start == 0 else "utf-8"
            handle = io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")
            reader = csv.reader(handle)
            first_line = 1
            for cells in reader:
                if cells:
                    yield lines_before + first_line, cells
                first_line = reader.line_num + 1
    except csv.Error as error:
        raise DataError(f"{name}: is not a readable CSV file ({error}).") from error


def header(path: Path, name: str) -> list[str]:
    """The header's cells as written (not stripped); refused if they are not UTF-8."""
    with path.open("rb") as handle:
        head = handle.read(4)
    encoding = next((enc for bom, enc in _OTHER_BOMS.items() if head.startswith(bom)), None)
    if encoding is not None:
        raise DataError(f"{name}: is {encoding} text, not UTF-8; {UTF8_REMEDY}.")
    first = next(csv_rows(path, name), None)
    if first is None:
        raise DataError(f"{name}: the file is empty; expected a header row naming the columns.")
    line, cells = first
    for position, cell in enumerate(cells, start=1):
        if _UNDECODABLE.search(cell):
            raise DataError(
                f"{name}, row {line}, header cell {position}: is not UTF-8 text "
                f"({undecodable(cell)!r}); {UTF8_REMEDY}."
            )
    return cells


def undecodable(cell: str) -> bytes:
    """The bytes of a cell read with surrogate escapes, as they are in the file."""
    return cell.encode("utf-8", "surrogateescape")


def locator(path: Path, name: str, start: int = 0) -> Callable[[int], int | None]:
    """Maps data row `index` of the lines from byte `start` to its row in the file."""

    def locate(index: int) -> int | None:
        rows = csv_rows(path, name, start)
        if start == 0:
            next(rows, None)  # the header
        for i, (line, _cells) in enumerate(rows):
            if i == index:
                return line
        return None

    return locate


def _count_newlines(path: Path, stop: int) -> int:
    count, left = 0, stop
    with path.open("rb") as handle:
        while left > 0 and (block := handle.read(min(left, 1 << 24))):
            count += block.count(b"\n")
            left -= len(block)
    return count


def first_problem(
    piece: Piece, columns: Sequence[str], floats: Sequence[str], text: Sequence[str]
) -> DataError | None:
    """The first row (in file order) of the piece that cannot be read, as an error.

    A row with the wrong number of values, a wanted cell that is not UTF-8, or a number
    column's cell that is not a number (blank cells are left to the reader's own check).
    `columns` are the file's column names (stripped).
    """
    shard = piece.shard
    rows = csv_rows(shard.path, shard.name, piece.start)
    if piece.start == 0:
        next(rows, None)
    wanted = {columns.index(c): c for c in [*floats, *text] if c in columns}
    numbers = {columns.index(c) for c in floats if c in columns}
    for line, cells in rows:
        if len(cells) != len(columns):
            return ragged(shard.name, line, cells, columns)
        for index, column in wanted.items():
            cell = cells[index]
            if _UNDECODABLE.search(cell):
                return DataError(
                    f"{shard.name}, row {line}, column {column!r}: is not UTF-8 text "
                    f"({undecodable(cell)!r}); {UTF8_REMEDY}."
                )
            if index in numbers and cell.strip(" \t") and not _is_number(cell):
                return not_a_number(shard.name, line, column, cell)
    return None


def ragged(name: str, line: int, cells: Sequence[str], columns: Sequence[str]) -> DataError:
    """A row whose number of values differs from the header's."""
    count = len(cells)
    message = (
        f"{name}, row {line}: found {count} value{'s' if count != 1 else ''}, expected "
        f"{len(columns)} (one per header column: {', '.join(columns)})."
    )
    spans = sum(cell.rstrip("\r\n").count("\n") for cell in cells)
    if spans:  # a quote opened on this row swallowed the line breaks after it
        message += (
            f" A quoted cell that starts on row {line} runs over {spans + 1} lines, to row "
            f"{line + spans}; is its closing quote missing?"
        )
    return DataError(message)


def not_a_number(name: str, line: int | None, column: str, value: str) -> DataError:
    """A number column's cell that is not a number."""
    return DataError(
        f"{name}, row {row_text(line)}, column {column!r}: expected a number, got {value!r}."
    )


def _is_number(cell: str) -> bool:
    """Whether pyarrow reads `cell` as a float64: spaces and tabs around it are ignored,
    other whitespace is not, and Python's 1_000 is no number in a CSV file."""
    text = cell.strip(" \t")
    if text != text.strip() or "_" in text:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True
