"""Rows as a user sees them, remembered cheaply: for messages about missing values.

A CSV row's number in the file needs the file read again up to it (newlines inside
quoted cells), so `RowRef` keeps where to look and finds the row only when a message
shows it. Plain data: scans carrying RowRefs cross processes (torchrun).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.io.shards import row_text


@dataclass(frozen=True)
class RowRef:
    """A row: the file's name and its row there (`row`), or for CSV where to find it."""

    name: str
    row: int | None = None
    csv_path: str | None = None  # CSV: the file, the piece's first byte, the data row index
    csv_start: int = 0
    csv_index: int = 0

    @property
    def number(self) -> int | None:
        """The row as the user sees it in the file (CSV: read again, on demand)."""
        if self.csv_path is None:
            return self.row
        from toolkit.io import csvrows

        return csvrows.locator(Path(self.csv_path), self.name, self.csv_start)(self.csv_index)

    @property
    def text(self) -> str:
        return row_text(self.number)


def row_ref(batch: Any, index: int) -> RowRef:
    """The RowRef of row `index` of a batch (a reader.Batch, or one with `row(index)`)."""
    piece = getattr(batch, "piece", None)
    if piece is not None and piece.shard.format == "csv":
        return RowRef(batch.name, None, str(piece.shard.path), piece.start, batch.offset + index)
    return RowRef(batch.name, batch.row(index))


def first_rows_text(refs: Sequence[RowRef]) -> str:
    """ "3, 8, 19" (one file), else "a.csv row 3, b.csv row 8"."""
    if len({ref.name for ref in refs}) <= 1:
        return ", ".join(ref.text for ref in refs)
    return ", ".join(f"{ref.name} row {ref.text}" for ref in refs)
