"""What the reader reads: a shard (one data file) and a piece (the part one process reads)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Shard:
    """One data file: where it is, how errors name it, its format, size and columns."""

    path: Path
    name: str
    format: str  # a name in toolkit.io.formats.FORMATS: "csv", "parquet"
    size: int
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Piece:
    """The part of a shard that one process reads."""

    shard: Shard
    start: int = 0  # CSV: the byte where the piece's first line starts (0: the header's)
    stop: int = -1  # CSV: the byte past its last line (-1: the end of the file)
    row_groups: tuple[int, ...] | None = None  # Parquet: its row groups (None: all of them)
    first_row: int = 0  # Parquet: the piece's first row within the file, 0-based

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.stop == -1 and self.row_groups is None

    @property
    def nbytes(self) -> int:
        """The bytes of the file between `start` and `stop`."""
        stop = self.shard.size if self.stop == -1 else self.stop
        return stop - self.start


def row_text(row: int | None) -> str:
    """A row number for an error message; "?" when it could not be found."""
    return "?" if row is None else str(row)
