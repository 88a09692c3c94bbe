"""The one reader: typed Arrow batches of any registered format, and where their rows are.

Training (`DataSource.blocks`) and `toolkit predict` (`open_input`) both read through
`read_piece`, so a file's format is detected the same way, it is chunked the same way,
and a bad file gets the same error: the file, the row as seen in the file (the CSV header
is row 1), the column and the value. The checks are layers on top: `Batch.block` refuses
blank cells always, NaN and infinity only when asked to (training asks; predict leaves
them to the Predictor).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.defaults import CHUNK_ROWS, STDIO
from toolkit.errors import DataError, UsageError
from toolkit.io.blocks import Prefetch, float_block
from toolkit.io.formats import FORMATS, open_shard
from toolkit.io.names import csv_header_hint, did_you_mean, listed
from toolkit.io.shards import Piece, Shard

if TYPE_CHECKING:
    import pyarrow as pa

STDIN_NAME = "<stdin>"


@dataclass(frozen=True)
class Batch:
    """Consecutive rows of a piece: float64 columns (blank cells as nulls), then text ones."""

    data: pa.RecordBatch
    piece: Piece
    offset: int  # the batch's first row within the piece, 0-based
    n_floats: int  # how many of the columns, from the first, are the float64 ones

    @property
    def name(self) -> str:
        """How errors name the file."""
        return self.piece.shard.name

    def row(self, index: int) -> int | None:
        """The row a user sees in the file for row `index` of this batch (None: not found).

        For CSV this reads the file again up to that row: for error messages only.
        """
        return FORMATS[self.piece.shard.format].row_of(self.piece, self.offset + index)

    def block(self, finite: bool = True) -> np.ndarray:
        """The float64 columns as one (rows, columns) block; see `blocks.float_block`."""
        data = self.data
        if data.num_columns != self.n_floats:
            data = data.select(range(self.n_floats))
        return float_block(data, self.name, self.row, finite)

    def column(self, name: str) -> Any:
        """One column as an Arrow array."""
        return self.data.column(name)


def read_piece(
    piece: Piece,
    floats: Sequence[str],
    rows: int = CHUNK_ROWS,
    *,
    text: Sequence[str] = (),
    bar: Any = None,
    hashed: dict[Path, str] | None = None,
) -> Iterator[Batch]:
    """The piece's rows in file order, in batches of at most `rows` rows.

    `bar` (tqdm) follows the bytes of streamed formats; `hashed` collects the SHA-256 of
    streamed files read whole.
    """
    fmt = FORMATS[piece.shard.format]
    offset = 0
    try:
        for data in fmt.batches(piece, floats, rows, text=text, bar=bar, hashed=hashed):
            yield Batch(data, piece, offset, len(floats))
            offset += data.num_rows
    except OSError as error:  # permissions, a vanished file, an I/O error
        raise DataError(
            f"{piece.shard.name}: cannot be read ({error.strerror or error})."
        ) from error


@dataclass
class Input:
    """One file (or stdin) whose `floats` and `text` columns are read in chunks."""

    shard: Shard
    floats: tuple[str, ...]
    text: tuple[str, ...]
    _readers: list[Generator[Any, None, None]] = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        return self.shard.name

    def chunks(self, rows: int = CHUNK_ROWS, *, finite: bool) -> Iterator[tuple[np.ndarray, Batch]]:
        """(float64 block of the float columns, its batch) of at most `rows` rows, in order.

        Blank cells are refused; NaN and infinity only with `finite`. Read and checked a
        few chunks ahead in a background thread, as training's blocks are.
        """

        def checked() -> Iterator[tuple[np.ndarray, Batch]]:
            for batch in read_piece(Piece(self.shard), self.floats, rows, text=self.text):
                yield batch.block(finite), batch

        reader = Prefetch(checked())
        self._readers.append(reader)  # stopped by open_input on exit, before stdin's copy goes
        return reader

    def close(self) -> None:
        """Stop every reading thread `chunks` started."""
        for reader in self._readers:
            reader.close()
        self._readers.clear()


@contextlib.contextmanager
def open_input(
    source: str | Path, floats: Sequence[str], text: Sequence[str] = ()
) -> Iterator[Input]:
    """Open a data file, or stdin for "-", to read `floats` as numbers and `text` as text.

    The format is detected as for training (suffix, else magic bytes, else CSV). stdin is
    first copied to a temporary file, deleted on exit, so that its errors name the row
    exactly as a file's do. A missing column is a usage error.
    """
    with _local(source) as (path, name):
        shard = open_shard(path, name)
        wanted = [*floats, *text]
        missing = [column for column in wanted if column not in shard.columns]
        if missing:
            raise UsageError(_lacks(shard, missing))
        FORMATS[shard.format].check(shard, floats)
        table = Input(shard, tuple(floats), tuple(text))
        try:
            yield table
        finally:
            table.close()


def _lacks(shard: Shard, missing: Sequence[str]) -> str:
    """Why a file without some wanted columns is refused, with what it has and may mean."""
    message = (
        f"{shard.name} lacks column{'s' if len(missing) > 1 else ''} "
        f"{', '.join(repr(m) for m in missing)}; it has {listed(shard.columns)}."
    )
    close = {m: did_you_mean(m, shard.columns) for m in missing}
    meant = [f"{found!r} for {m!r}" for m, found in close.items() if found is not None]
    if meant:
        message += f" Names must match exactly: did you mean {', '.join(meant)}?"
    return message + (csv_header_hint(shard.columns) if shard.format == "csv" else "")


@contextlib.contextmanager
def _local(source: str | Path) -> Iterator[tuple[Path, str]]:
    """(a path to read, how errors name it); stdin is copied to a temporary file first."""
    if str(source) != STDIO:
        path = Path(source)
        if not path.exists() or path.is_dir():
            what = "is a folder; expected a file" if path.is_dir() else "does not exist"
            raise UsageError(f"input file {str(source)!r} {what}.")
        yield path, str(source)
        return
    with tempfile.TemporaryDirectory(prefix="toolkit-stdin-") as folder:
        path = Path(folder) / "stdin"
        with path.open("wb") as copy:
            shutil.copyfileobj(sys.stdin.buffer, copy, 1 << 20)
        yield path, STDIN_NAME
