"""Training data: the embedded seed set, or the user's CSV or Parquet files, streamed.

Files are read with pyarrow (multi-threaded, no hand-written parsing) in chunks, so
memory is bounded by `--chunk-rows`, not by the size of the data. Every chunk is checked
as it is read; every error names the file, the row as the user sees it in the file
(1-based, the CSV header is row 1), the column and the value.

The data is one or more shards (a file, a folder, a glob). Under torchrun each process
reads a contiguous part of their bytes (`DataSource.pieces`): a CSV file is cut at line
breaks, a Parquet file between row groups.
"""

from __future__ import annotations

import csv
import difflib
import functools
import glob
import hashlib
import io
import math
import queue
import re
import sys
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.errors import DataError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

SEED_NAME = "<embedded seed data>"
DEFAULT_TARGET = "y"
# Rows per chunk handed to the solvers: big enough for BLAS to run at full speed,
# small enough (about 50 MB at 100 float64 columns) to stay out of memory trouble.
DEFAULT_CHUNK_ROWS = 65_536
PARQUET_SUFFIXES = (".parquet", ".pq")
# Files smaller than this read in well under a second: no progress bar.
PROGRESS_MIN_BYTES = 64 << 20
# pyarrow parses CSV in blocks of this many bytes, with dozens of blocks in flight.
# Measured on a 776 MB file of 33 columns: 1 MiB blocks peak at 123 MiB RSS and read in
# 1.8 s; 17 MiB blocks peak at 950 MiB and take 4.3 s. Bigger is not faster.
CSV_BLOCK_BYTES = 1 << 20
# Checked blocks the reading thread may hold ready for the consumer.
PREFETCH_BLOCKS = 8
_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Shard:
    """One data file: where it is, how errors name it, its format, size and columns."""

    path: Path
    name: str
    parquet: bool
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


@dataclass
class DataSource:
    """The selected columns of one or more shards, readable chunk by chunk, validated."""

    name: str
    shards: list[Shard]
    feature_names: list[str]
    target_names: list[str]
    notes: list[str] = field(default_factory=list)
    _hashed: dict[Path, str] = field(default_factory=dict, repr=False)  # SHA-256 by path

    @property
    def columns(self) -> list[str]:
        """Features then targets: the column order of every block."""
        return self.feature_names + self.target_names

    def pieces(self, rank: int = 0, world: int = 1) -> list[Piece]:
        """What process `rank` of `world` reads: a contiguous 1/world of the shards' bytes.

        Every CSV line goes to the process whose byte range holds its first byte, and
        every Parquet row group to the one whose range holds its start, so the pieces of
        all processes cover every row exactly once, in shard order.
        """
        if world == 1:
            return [Piece(shard) for shard in self.shards]
        total = sum(shard.size for shard in self.shards)
        low, high = total * rank // world, total * (rank + 1) // world
        pieces, offset = [], 0
        for shard in self.shards:
            begin, end = max(low - offset, 0), min(high - offset, shard.size)
            if begin < end:
                piece = (_parquet_piece if shard.parquet else _csv_piece)(shard, begin, end)
                if piece is not None:
                    pieces.append(piece)
            offset += shard.size
        return pieces

    def blocks(
        self,
        pieces: Sequence[Piece] | None = None,
        rows: int = DEFAULT_CHUNK_ROWS,
        progress: bool = False,
    ) -> Iterator[np.ndarray]:
        """Validated float64 blocks [features | targets] of at most `rows` rows, in file order.

        `pieces` defaults to every shard whole; `progress` shows a byte bar on stderr
        while large CSV files are read. Reading and checking run in a background thread,
        a few blocks ahead, so that parsing overlaps with the caller's work.
        """
        pieces = self.pieces() if pieces is None else pieces
        csv_bytes = sum(_piece_bytes(p) for p in pieces if not p.shard.parquet)
        bar = _byte_bar(csv_bytes, pieces) if progress and csv_bytes >= PROGRESS_MIN_BYTES else None
        try:
            yield from _prefetch(self._checked_blocks(pieces, rows, bar), PREFETCH_BLOCKS)
        finally:
            if bar is not None:
                bar.close()

    def _checked_blocks(self, pieces: Sequence[Piece], rows: int, bar: Any) -> Iterator[np.ndarray]:
        columns = self.columns
        for piece in pieces:
            read = _parquet_batches if piece.shard.parquet else _csv_batches
            offset = 0
            try:
                for batch in read(piece, columns, rows, bar, self._hashed):
                    block = _checked_block(batch, piece, offset, columns)
                    offset += len(block)
                    yield block
            except OSError as error:  # permissions, a vanished file, an I/O error
                raise DataError(
                    f"{piece.shard.name}: cannot be read ({error.strerror or error})."
                ) from error
            if offset == 0 and piece.whole:
                raise DataError(f"{piece.shard.name}: {_no_rows(piece.shard, columns)}")

    def sha256(self, stop: threading.Event | None = None) -> str:
        """SHA-256 of the file for one shard; else of every shard's name and SHA-256, in order.

        A CSV shard that `blocks` read whole was hashed on the way: it is not read again.
        Setting `stop` (from another thread) abandons the work: the result is then "".
        """
        hashes = [self._hashed.get(s.path) or _sha256(s.path, stop) for s in self.shards]
        if stop is not None and stop.is_set():
            return ""
        if len(self.shards) == 1:
            return hashes[0]
        digest = hashlib.sha256()
        for shard, value in zip(self.shards, hashes, strict=True):
            digest.update(f"{shard.path.name}\t{value}\n".encode())
        return digest.hexdigest()

    def hashed_while_read(self, pieces: Sequence[Piece]) -> bool:
        """Whether reading `pieces` with `blocks` hashes every shard on the way."""
        whole = {piece.shard.path for piece in pieces if piece.whole and not piece.shard.parquet}
        return all(shard.path in whole for shard in self.shards)


def open_source(
    path: str | Path | None = None, targets: Sequence[str] = (), features: Sequence[str] = ()
) -> DataSource:
    """Find the shards behind `path` (the embedded seed data when None) and pick the columns.

    `path` is a file, a folder of `.csv`/`.parquet`/`.pq` shards, or a glob such as
    `data/part-*.csv`; shards are read in name order and must share the selected columns.
    `targets` defaults to the column named `y`, else the last column; `features`
    defaults to every column that is not a target. Only headers and Parquet schemas
    are read here; `DataSource.blocks` reads the rows.
    """
    if path is None:
        seed = Path(str(resources.files("toolkit") / "datasets" / "seed.csv"))
        shards, name = [_open_shard(seed, SEED_NAME)], SEED_NAME
    else:
        shards = [_open_shard(source, str(source)) for source in resolve_sources(path)]
        name = shards[0].name if len(shards) == 1 else f"{path} ({len(shards)} shards)"
    first = shards[0]
    feature_names, target_names = select_columns(first.columns, targets, features, first.name)
    for shard in shards[1:]:  # every later shard must hold the columns the first resolved to
        select_columns(shard.columns, target_names, feature_names, shard.name)
    for shard in shards:
        if shard.parquet:
            _check_parquet_types(shard, feature_names + target_names)
    notes = []
    if not targets and target_names[0] != DEFAULT_TARGET:
        notes.append(
            f"no column is named {DEFAULT_TARGET!r}: using the last column, "
            f"{target_names[0]!r}, as the target (choose with --target)."
        )
    return DataSource(name, shards, feature_names, target_names, notes)


def resolve_sources(path: str | Path) -> list[Path]:
    """The data files behind --data: one file, a folder's shards, or a glob's matches."""
    text = str(path)
    if any(char in text for char in "*?["):
        matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not matches:
            raise UsageError(f"--data {text!r} matches no files.")
        return matches
    path = Path(path)
    if not path.exists():
        raise UsageError(f"data file {text!r} does not exist.")
    if path.is_dir():
        shards = sorted(p for p in path.iterdir() if p.is_file() and _is_data_file(p))
        if not shards:
            raise UsageError(
                f"data folder {text!r} holds no .csv, .parquet or .pq files; expected shards."
            )
        return shards
    return [path]


def holdout_mask(block: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for the rows of `block` held out for validation: a seeded hash of each row's values.

    A row lands on the same side whatever the chunking, the shard order or the number of
    processes, so the split needs no row count and no second pass, and exact duplicate
    rows never straddle it. About `fraction` of the rows are held out (binomially).
    """
    n, width = block.shape
    if fraction <= 0 or n == 0:
        return np.zeros(n, dtype=bool)
    odd = _odd_multipliers(seed, width)
    # A weighted sum of the values' bits (exact modular arithmetic: no rounding, no order
    # effects), then splitmix64's finaliser so that every bit moves the result.
    h = np.ascontiguousarray(block, dtype=np.float64).view(np.uint64) @ odd
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h < np.uint64(int(fraction * 2.0**64))


@functools.lru_cache(maxsize=16)
def _odd_multipliers(seed: int, width: int) -> np.ndarray:
    """One seeded odd 64-bit multiplier per column (drawn once per run, not per block)."""
    rng = np.random.default_rng([seed, width])
    odd = rng.integers(0, 1 << 63, size=width, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    odd.flags.writeable = False
    return odd


@dataclass
class Dataset:
    """A whole data set in memory, as a float64 Arrow table (small data, tests, benchmarks)."""

    source: str
    sha256: str
    table: pa.Table
    feature_names: list[str]
    target_names: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return self.table.num_rows

    def chunks(
        self, rows: int = DEFAULT_CHUNK_ROWS, select: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (features, targets) float64 blocks of at most `rows` rows, in file order.

        `select` is an optional boolean mask over all rows; only rows where it is True
        are yielded.
        """
        d = len(self.feature_names)
        offset = 0
        for batch in self.table.to_batches(max_chunksize=rows):
            k = batch.num_rows
            block = _to_block(batch)
            if select is not None:
                block = block[select[offset : offset + k]]
            offset += k
            if len(block):
                yield block[:, :d], block[:, d:]

    def arrays(self, select: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All selected rows as two C-contiguous float64 arrays: features (n, d), targets (n, t)."""
        parts = list(self.chunks(rows=max(self.n_rows, 1), select=select))
        if not parts:
            d, t = len(self.feature_names), len(self.target_names)
            return np.empty((0, d)), np.empty((0, t))
        features = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
        targets = np.ascontiguousarray(np.concatenate([p[1] for p in parts]))
        return features, targets


def load_dataset(
    path: str | Path | None = None,
    targets: Sequence[str] = (),
    features: Sequence[str] = (),
    progress: bool = False,
) -> Dataset:
    """Read and validate a whole data set into memory (see `open_source` for the arguments)."""
    import pyarrow as pa

    source = open_source(path, targets, features)
    schema = pa.schema([(name, pa.float64()) for name in source.columns])
    batches = []
    for block in source.blocks(progress=progress):
        # Each block is transposed while it sits in cache; Arrow then takes every
        # contiguous column as it is, without another copy.
        columns = np.ascontiguousarray(block.T)
        arrays = [
            pa.Array.from_buffers(pa.float64(), len(column), [None, pa.py_buffer(column)])
            for column in columns
        ]
        batches.append(pa.record_batch(arrays, schema=schema))
    table = pa.Table.from_batches(batches, schema=schema)
    return Dataset(
        source.name,
        source.sha256(),
        table,
        source.feature_names,
        source.target_names,
        source.notes,
    )


def select_columns(
    columns: Sequence[str], targets: Sequence[str], features: Sequence[str], name: str
) -> tuple[list[str], list[str]]:
    """Resolve --target/--features against the file's columns; unknown names are usage errors."""
    if len(columns) < 2 and not features:
        raise DataError(
            f"{name}: found 1 column ({columns[0]!r}); expected at least 2 "
            "(one or more features and a target)."
        )
    for flag, names in (("--target", targets), ("--features", features)):
        for column in names:
            if column not in columns:
                raise UsageError(_unknown_column(column, flag, columns, name))
        duplicates = sorted({c for c in names if list(names).count(c) > 1})
        if duplicates:
            raise UsageError(f"{flag} names {duplicates[0]!r} more than once.")
    if targets:
        target_names = list(targets)
    else:
        target_names = [DEFAULT_TARGET if DEFAULT_TARGET in columns else columns[-1]]
    both = [c for c in features if c in target_names]
    if both:
        raise UsageError(f"column {both[0]!r} is both a feature and a target; pick one.")
    feature_names = list(features) or [c for c in columns if c not in target_names]
    if not feature_names:
        raise UsageError(f"{name}: every column is a target; at least one feature is needed.")
    return feature_names, target_names


def _unknown_column(column: str, flag: str, columns: Sequence[str], name: str) -> str:
    message = f"unknown column {column!r} in {flag}; {name} has columns {', '.join(columns)}."
    close = difflib.get_close_matches(column, columns, n=1)
    if close:
        message += f" Did you mean {close[0]!r}?"
    return message


def _open_shard(path: Path, name: str) -> Shard:
    try:
        if _is_parquet(path):
            columns = _parquet_columns(path, name)
            return Shard(path, name, True, path.stat().st_size, tuple(columns))
        return Shard(path, name, False, path.stat().st_size, tuple(csv_header(path, name)))
    except OSError as error:  # permissions, a vanished file, an I/O error
        raise DataError(f"{name}: cannot be read ({error.strerror or error}).") from error


def _is_data_file(path: Path) -> bool:
    return path.suffix.lower() in (".csv", *PARQUET_SUFFIXES)


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return True
    with path.open("rb") as handle:
        return handle.read(4) == _PARQUET_MAGIC


def _sha256(path: Path, stop: threading.Event | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            if stop is not None and stop.is_set():
                return ""
            digest.update(block)
    return digest.hexdigest()


def _to_block(batch: pa.RecordBatch) -> np.ndarray:
    """A record batch of float64 columns (no nulls) as one C-contiguous (rows, columns) array.

    Arrow's own row-major conversion (pyarrow >= 16): 5x faster than copying the columns
    one by one from Python (0.07 s against 0.36 s for 776 MB of CSV, 33 columns).
    """
    if batch.num_rows == 0:
        return np.empty((0, batch.num_columns), dtype=np.float64)
    return np.asarray(batch.to_tensor(row_major=True))


def _checked_block(
    batch: pa.RecordBatch, piece: Piece, offset: int, columns: Sequence[str]
) -> np.ndarray:
    """The batch as a float64 block; blank cells, NaN and infinity are errors.

    Least squares has no answer with them. `offset` is the batch's first row in the piece.
    """
    import pyarrow.compute as pc

    for name, column in zip(columns, batch.columns, strict=True):
        if column.null_count:
            index = pc.index(pc.is_null(column), True).as_py()
            raise DataError(
                f"{piece.shard.name}, row {_row_text(_row_of(piece, offset + index))}, "
                f"column {name!r}: blank cell; expected a number."
            )
    block = _to_block(batch)
    # One summing pass finds any NaN or infinity (a huge but finite sum is checked cell by cell).
    if not np.isfinite(block.sum(axis=0)).all():
        bad = np.argwhere(~np.isfinite(block))
        if len(bad):
            row, j = (int(k) for k in bad[0])
            raise DataError(
                f"{piece.shard.name}, row {_row_text(_row_of(piece, offset + row))}, "
                f"column {columns[j]!r}: expected a finite number, got {float(block[row, j])!r}; "
                "remove or fill in the row."
            )
    return block


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def _prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Yield `items`, produced by a background thread up to `depth` items ahead.

    pyarrow and numpy release the GIL while they parse and copy, so the producer's work
    overlaps with the consumer's. Errors reach the consumer in order; a consumer that
    stops early stops the producer too.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as error:  # handed to the consumer, raised there
            ready.put(_Raised(error))
            return
        ready.put(_DONE)

    producer = threading.Thread(target=produce, name="toolkit-reader", daemon=True)
    producer.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                producer.join(0.05)
        if isinstance(items, Generator):
            items.close()  # runs its cleanup (open files) here, now that the producer is gone


def _row_of(piece: Piece, index: int) -> int | None:
    """The row a user sees in the file for data row `index` (0-based) of `piece`."""
    if piece.shard.parquet:
        return piece.first_row + index + 1  # Parquet has no header row: data row 1 is row 1
    return csv_locator(piece.shard.path, piece.shard.name, piece.start)(index)


def _row_text(row: int | None) -> str:
    return "?" if row is None else str(row)


def _no_rows(shard: Shard, columns: Sequence[str]) -> str:
    if shard.parquet:
        return f"has columns ({', '.join(columns)}) but no data rows."
    return f"found the header ({', '.join(shard.columns)}) but no data rows."


def _piece_bytes(piece: Piece) -> int:
    stop = piece.shard.size if piece.stop == -1 else piece.stop
    return stop - piece.start


def _byte_bar(total: int, pieces: Sequence[Piece]) -> Any:
    from tqdm.auto import tqdm

    names = {piece.shard.path.name for piece in pieces}
    label = next(iter(names)) if len(names) == 1 else f"{len(names)} files"
    return tqdm(
        total=total,
        desc=f"reading {label}",
        unit="B",
        unit_scale=True,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )


# ---------------------------------------------------------------------------------------
# CSV


def _csv_piece(shard: Shard, begin: int, end: int) -> Piece | None:
    """The lines whose first byte lies in [begin, end)."""
    start, stop = _line_start(shard.path, begin), _line_start(shard.path, end)
    if start >= stop:
        return None
    return Piece(shard, start=start, stop=-1 if stop >= shard.size else stop)


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


def _csv_batches(
    piece: Piece, columns: list[str], rows: int, bar: Any, hashed: dict[Path, str]
) -> Iterator[pa.RecordBatch]:
    """The piece's rows; a whole file is hashed into `hashed` as its bytes go by."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    shard = piece.shard
    read_options, convert_options = csv_options(columns, piece)
    digest = hashlib.sha256() if piece.whole else None
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
                    if digest is not None and stream.at_end():
                        hashed[shard.path] = digest.hexdigest()
                    return
                for start in range(0, batch.num_rows, rows):
                    yield batch.slice(start, rows)
        except pa.ArrowInvalid as error:
            locate = csv_locator(shard.path, shard.name, piece.start)
            raise explain_csv_error(
                shard.path, shard.name, str(error), columns, locate, piece
            ) from error
    finally:
        stream.close()


def csv_options(columns: Sequence[str], piece: Piece | None = None) -> tuple[Any, Any]:
    """The pyarrow ReadOptions and ConvertOptions `DataSource.blocks` reads CSV with.

    Blocks of CSV_BLOCK_BYTES; only `columns`, converted to float64. A piece that starts
    after the header gets the header's names instead.
    """
    import pyarrow.csv as pa_csv

    names = None if piece is None or piece.start == 0 else list(piece.shard.columns)
    read_options = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, column_names=names)
    return read_options, _float_conversion(columns)


def _float_conversion(columns: Sequence[str]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    return pa_csv.ConvertOptions(
        column_types={column: pa.float64() for column in columns},
        include_columns=list(columns),
        null_values=[""],  # only a blank cell is missing; 'NA' or 'nan' get their own errors
        strings_can_be_null=False,
        quoted_strings_can_be_null=True,
    )


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


def csv_header(path: Path, name: str) -> list[str]:
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


_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")
_NOT_A_NUMBER = re.compile(r"In CSV column #(\d+): .*invalid value '(.*)'", re.DOTALL)


def explain_csv_error(
    path: Path,
    name: str,
    message: str,
    wanted: list[str],
    locate: Callable[[int], int | None],
    piece: Piece | None = None,
) -> DataError:
    """Turn pyarrow's message (which lacks row numbers) into one naming row, column and value.

    `piece` limits the search to the lines one process reads (default: the whole file).
    """
    start = 0 if piece is None else piece.start
    if _RAGGED.search(message):
        rows = _csv_rows(path, name, start)
        header = next(rows)[1] if start == 0 else list(piece.shard.columns)  # type: ignore[union-attr]
        for line, cells in rows:
            if len(cells) != len(header):
                return DataError(
                    f"{name}, row {line}: found {len(cells)} values, expected {len(header)} "
                    f"(one per header column: {', '.join(header)})."
                )
    match = _NOT_A_NUMBER.search(message)
    if match:
        column = wanted[int(match.group(1))] if int(match.group(1)) < len(wanted) else None
        for candidate in [column] + [c for c in wanted if c != column]:
            if candidate is None:
                continue
            index, value = _first_non_number(path, candidate, piece)
            if index is not None:
                return DataError(
                    f"{name}, row {_row_text(locate(index))}, column {candidate!r}: "
                    f"expected a number, got {value!r}."
                )
    return DataError(f"{name}: cannot be read as CSV ({message.strip()}).")


def _first_non_number(
    path: Path, column: str, piece: Piece | None = None
) -> tuple[int | None, str | None]:
    """Index and text of the first cell in `column` that pyarrow cannot convert to float64."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    if piece is None:
        piece = Piece(Shard(path, str(path), False, path.stat().st_size, ()))
    convert = pa_csv.ConvertOptions(
        column_types={column: pa.string()}, include_columns=[column], strings_can_be_null=False
    )
    stream = _ByteRange(path, piece.start, piece.stop)
    read_options = csv_options([column], piece)[0]
    offset = 0
    with pa_csv.open_csv(stream, read_options=read_options, convert_options=convert) as rd:
        for batch in rd:
            strings = batch.column(0)
            try:
                pc.cast(strings, pa.float64())
            except pa.ArrowInvalid:
                for i, value in enumerate(strings.to_pylist()):
                    try:
                        pc.cast(pa.array([value]), pa.float64())
                    except pa.ArrowInvalid:
                        return offset + i, value
            offset += len(strings)
    return None, None


# ---------------------------------------------------------------------------------------
# Parquet


def _parquet_columns(path: Path, name: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{name}: is not a readable Parquet file ({error}).") from error
    columns = list(schema.names)
    if not columns:
        raise DataError(f"{name}: the Parquet file has no columns.")
    return columns


def _check_parquet_types(shard: Shard, wanted: Sequence[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(shard.path)
    for column_name in wanted:
        kind = schema.field(column_name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            file = pq.ParquetFile(shard.path)
            first = next(file.iter_batches(batch_size=1, columns=[column_name]), None)
            value = first.column(0)[0].as_py() if first is not None and first.num_rows else None
            raise DataError(
                f"{shard.name}, column {column_name!r}: has type {kind}; expected a numeric "
                f"column (first value: {value!r})."
            )


def _parquet_piece(shard: Shard, begin: int, end: int) -> Piece | None:
    """The row groups whose start, placed proportionally in the file's bytes, is in [begin, end)."""
    import pyarrow.parquet as pq

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


def _parquet_batches(
    piece: Piece, columns: list[str], rows: int, bar: Any, hashed: dict[Path, str]
) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(piece.shard.path)
        groups = piece.row_groups
        batches = file.iter_batches(
            batch_size=rows,
            row_groups=list(range(file.num_row_groups)) if groups is None else list(groups),
            columns=columns,
        )
        for batch in batches:
            yield pa.record_batch(
                [batch.column(name).cast(pa.float64()) for name in columns], names=columns
            )
    except pa.ArrowInvalid as error:
        raise DataError(f"{piece.shard.name}: is not a readable Parquet file ({error}).") from error
