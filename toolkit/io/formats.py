"""The file formats the reader knows: a registry from a format's name to its reader module.

Every reader module (toolkit/io/csv.py, toolkit/io/parquet.py) provides the small interface
`Format` describes, so adding a format is one new module plus one entry in FORMATS.
A file's format is found by its suffix, else by the magic bytes it starts with, else it is
read as CSV: text has no magic bytes, and a file that is not CSV fails there with an
error naming the file and what was wrong.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from toolkit.errors import DataError, UsageError
from toolkit.io import csv, parquet
from toolkit.io.shards import Piece, Shard

if TYPE_CHECKING:
    import pyarrow as pa


class Format(Protocol):
    """What the reader needs from a format's module."""

    NAME: str
    SUFFIXES: tuple[str, ...]  # lower case, with the dot: (".parquet", ".pq")
    MAGIC: bytes  # what every file of the format starts with; b"" for text formats
    # Read front to back as one byte stream: a byte progress bar can follow the reading,
    # and a whole file is hashed on the way (no second read for its SHA-256).
    STREAMED: bool

    def columns(self, path: Path, name: str) -> list[str]:
        """The file's column names (a CSV header, a Parquet schema)."""
        ...

    def check(self, shard: Shard, floats: Sequence[str]) -> None:
        """Refuse, before any row is read, columns that can never be read as numbers."""
        ...

    def cut(self, shard: Shard, begin: int, end: int) -> Piece | None:
        """The rows that start in bytes [begin, end) of the file, or None when none do."""
        ...

    def batches(
        self,
        piece: Piece,
        floats: Sequence[str],
        rows: int,
        *,
        text: Sequence[str] = (),
        bar: Any = None,
        hashed: dict[Path, str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of at most `rows` rows: `floats` as float64 (blank cells are
        nulls), then `text` as read. Errors name the file, row, column and value."""
        ...

    def raw_batches(
        self,
        piece: Piece,
        types: dict[str, Any],
        rows: int,
        *,
        na_values: Sequence[str] = (),
        categorical: Sequence[str] = (),
        bar: Any = None,
        hashed: dict[Path, str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of the `types` columns (name -> the Arrow type text formats
        convert to) for a table plan: blanks and `na_values` tokens are nulls where the
        format reads text. A cell that is not a number in a number column of
        `categorical` (numeric features) suggests --categorical."""
        ...

    def row_of(self, piece: Piece, index: int) -> int | None:
        """The row a user sees in the file for data row `index` (0-based) of `piece`."""
        ...

    def no_rows(self, shard: Shard, columns: Sequence[str]) -> str:
        """Why a file without data rows is refused, after its name."""
        ...


FORMATS: dict[str, Format] = {"csv": csv, "parquet": parquet}  # modules as Formats
FALLBACK = "csv"  # the format of a file that neither suffix nor magic bytes identify


def format_named(name: str) -> Format:
    """The reader module of the format `name`; an unknown name is a usage error."""
    try:
        return FORMATS[name]
    except KeyError as error:
        known = ", ".join(sorted(FORMATS))
        raise UsageError(f"unknown data format {name!r}; known formats: {known}.") from error


def suffixes() -> tuple[str, ...]:
    """Every registered suffix, in registry order: (".csv", ".parquet", ".pq")."""
    return tuple(suffix for fmt in FORMATS.values() for suffix in fmt.SUFFIXES)


def by_suffix(path: Path) -> str | None:
    """The format a file's suffix names, or None."""
    suffix = path.suffix.lower()
    return next((name for name, fmt in FORMATS.items() if suffix in fmt.SUFFIXES), None)


def detect(path: Path) -> str:
    """The format of the file at `path`: by suffix, else by magic bytes, else FALLBACK."""
    named = by_suffix(path)
    if named is not None:
        return named
    magics = {name: fmt.MAGIC for name, fmt in FORMATS.items() if fmt.MAGIC}
    with path.open("rb") as handle:
        head = handle.read(max(map(len, magics.values()), default=0))
    return next((name for name, magic in magics.items() if head.startswith(magic)), FALLBACK)


def open_shard(path: Path, name: str) -> Shard:
    """Detect the file's format and read its columns (not its rows)."""
    try:
        kind = detect(path)
        columns = FORMATS[kind].columns(path, name)
        return Shard(path, name, kind, path.stat().st_size, tuple(columns))
    except OSError as error:  # permissions, a vanished file, an I/O error
        raise DataError(f"{name}: cannot be read ({error.strerror or error}).") from error
