"""Training data: the embedded seed set, or the user's CSV or Parquet file.

Files are read with pyarrow (multi-threaded, no hand-written parsing) and checked
before any training starts. Every error names the file, the row as the user sees it
in the file (1-based, the CSV header is row 1), the column and the value.
"""

from __future__ import annotations

import csv
import difflib
import glob
import hashlib
import io
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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
_PARQUET_MAGIC = b"PAR1"


@dataclass
class Dataset:
    """The selected numeric columns of one data file, validated, as a float64 Arrow table."""

    source: str
    sha256: str
    table: pa.Table
    feature_names: list[str]
    target_names: list[str]
    notes: list[str] = field(default_factory=list)
    _row_number: Callable[[int], int | None] = field(default=lambda i: i + 2, repr=False)

    @property
    def n_rows(self) -> int:
        return self.table.num_rows

    def row_number(self, index: int) -> int | None:
        """The row of data row `index` (0-based) as the user sees it in the file."""
        return self._row_number(index)

    def chunks(
        self, rows: int = DEFAULT_CHUNK_ROWS, select: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (features, targets) float64 blocks of at most `rows` rows, in file order.

        `select` is an optional boolean mask over all rows; only rows where it is True
        are yielded (used for the train/validation split).
        """
        d = len(self.feature_names)
        offset = 0
        for batch in self.table.to_batches(max_chunksize=rows):
            k = batch.num_rows
            block = np.empty((k, batch.num_columns), dtype=np.float64)
            for j, column in enumerate(batch.columns):
                block[:, j] = column.to_numpy(zero_copy_only=False)
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
    """Read and validate CSV or Parquet data (the embedded seed set when `path` is None).

    `path` is a file, a folder of `.csv`/`.parquet`/`.pq` shards, or a glob such as
    `data/part-*.csv`; shards are read in name order and must share the selected columns.
    `targets` defaults to the column named `y`, else the last column; `features`
    defaults to every column that is not a target. `progress` shows a bar on stderr
    while a large CSV file is read.
    """
    if path is None:
        with resources.as_file(resources.files("toolkit") / "datasets" / "seed.csv") as seed:
            return _load(Path(seed), SEED_NAME, targets, features, progress=False)
    sources = resolve_sources(path)
    parts: list[Dataset] = []
    for source in sources:
        try:
            parts.append(_load(source, str(source), targets, features, progress))
        except OSError as error:  # permissions, a vanished file, an I/O error
            raise DataError(f"{source}: cannot be read ({error.strerror or error}).") from None
        # Every later shard must hold the columns the first one resolved to.
        targets, features = parts[0].target_names, parts[0].feature_names
    return parts[0] if len(parts) == 1 else _concatenate(str(path), parts)


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


def _is_data_file(path: Path) -> bool:
    return path.suffix.lower() in (".csv", *PARQUET_SUFFIXES)


def _concatenate(name: str, parts: list[Dataset]) -> Dataset:
    """One Dataset over several shards, rows in shard order."""
    import pyarrow as pa

    # The data's hash covers every shard's name and content, in order.
    digest = hashlib.sha256()
    for part in parts:
        digest.update(f"{Path(part.source).name}\t{part.sha256}\n".encode())
    offsets = np.cumsum([0] + [part.n_rows for part in parts])

    def locate(index: int) -> int | None:  # the row within its shard
        shard = int(np.searchsorted(offsets, index, side="right")) - 1
        return parts[shard].row_number(index - int(offsets[shard]))

    return Dataset(
        source=f"{name} ({len(parts)} shards)",
        sha256=digest.hexdigest(),
        table=pa.concat_tables([part.table for part in parts]),
        feature_names=parts[0].feature_names,
        target_names=parts[0].target_names,
        notes=parts[0].notes,
        _row_number=locate,
    )


def _load(
    path: Path, name: str, targets: Sequence[str], features: Sequence[str], progress: bool
) -> Dataset:
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Hashing overlaps with parsing; hashlib releases the GIL on large blocks.
        digest = pool.submit(_sha256, path)
        if _is_parquet(path):
            columns = _parquet_columns(path, name)
            feature_names, target_names = select_columns(columns, targets, features, name)
            table, locate = _read_parquet(path, name, feature_names + target_names)
        else:
            columns = csv_header(path, name)
            feature_names, target_names = select_columns(columns, targets, features, name)
            table, locate = _read_csv(path, name, feature_names + target_names, progress)
        sha256 = digest.result()
    _check_values(table, name, locate)
    dataset = Dataset(name, sha256, table, feature_names, target_names, _row_number=locate)
    if not targets and target_names[0] != DEFAULT_TARGET:
        dataset.notes.append(
            f"no column is named {DEFAULT_TARGET!r}: using the last column, "
            f"{target_names[0]!r}, as the target (choose with --target)."
        )
    return dataset


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


def split_mask(n_rows: int, val_fraction: float, seed: int) -> np.ndarray:
    """A seeded boolean mask over rows: True marks the round(n * fraction) validation rows."""
    n_val = round(n_rows * val_fraction)
    mask = np.zeros(n_rows, dtype=bool)
    if n_val:
        mask[np.random.default_rng(seed).permutation(n_rows)[:n_val]] = True
    return mask


def _unknown_column(column: str, flag: str, columns: Sequence[str], name: str) -> str:
    message = f"unknown column {column!r} in {flag}; {name} has columns {', '.join(columns)}."
    close = difflib.get_close_matches(column, columns, n=1)
    if close:
        message += f" Did you mean {close[0]!r}?"
    return message


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return True
    with path.open("rb") as handle:
        return handle.read(4) == _PARQUET_MAGIC


# ---------------------------------------------------------------------------------------
# CSV


def _csv_rows(path: Path, name: str) -> Iterator[tuple[int, list[str]]]:
    """(file row number, cells) for each non-empty row, header included.

    Used for the header and, on the error path only, to map pyarrow's data-row
    indices to the rows a user sees (empty lines skipped, quoted newlines counted).
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            for cells in reader:
                if cells:
                    yield reader.line_num, cells
    except UnicodeDecodeError as error:
        raise DataError(
            f"{name}: is not UTF-8 text ({error.reason} at byte {error.start})."
        ) from None
    except csv.Error as error:
        raise DataError(f"{name}: is not a readable CSV file ({error}).") from None


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


def csv_locator(path: Path, name: str) -> Callable[[int], int | None]:
    def locate(index: int) -> int | None:
        rows = _csv_rows(path, name)
        next(rows, None)  # header
        for i, (line, _cells) in enumerate(rows):
            if i == index:
                return line
        return None

    return locate


_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")
_NOT_A_NUMBER = re.compile(r"In CSV column #(\d+): .*invalid value '(.*)'", re.DOTALL)


def _read_csv(
    path: Path, name: str, wanted: list[str], progress: bool = False
) -> tuple[pa.Table, Callable[[int], int | None]]:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    locate = csv_locator(path, name)
    convert = pa_csv.ConvertOptions(
        column_types={column: pa.float64() for column in wanted},
        include_columns=wanted,
        null_values=[""],  # only a blank cell is missing; 'NA' or 'nan' get their own errors
        strings_can_be_null=False,
        quoted_strings_can_be_null=True,
    )
    try:
        if progress and path.stat().st_size >= PROGRESS_MIN_BYTES:
            with _ByteProgress(path, f"reading {path.name}") as source:
                table = pa_csv.read_csv(source, convert_options=convert)
        else:
            table = pa_csv.read_csv(path, convert_options=convert)
    except pa.ArrowInvalid as error:
        raise explain_csv_error(path, name, str(error), wanted, locate) from None
    if table.num_rows == 0:
        raise DataError(
            f"{name}: found the header ({', '.join(table.column_names)}) but no data rows."
        )
    return table, locate


class _ByteProgress(io.RawIOBase):
    """A raw file that advances a tqdm bar as pyarrow reads it (measured: no slower)."""

    def __init__(self, path: Path, description: str) -> None:
        from tqdm.auto import tqdm

        self._file = path.open("rb", buffering=0)
        self._bar = tqdm(
            total=path.stat().st_size,
            desc=description,
            unit="B",
            unit_scale=True,
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
        )

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)
        self._bar.update(count or 0)
        return count

    def close(self) -> None:
        self._bar.close()
        self._file.close()
        super().close()


def explain_csv_error(
    path: Path, name: str, message: str, wanted: list[str], locate: Callable[[int], int | None]
) -> DataError:
    """Turn pyarrow's message (which lacks row numbers) into one naming row, column and value."""
    if _RAGGED.search(message):
        rows = _csv_rows(path, name)
        _, header = next(rows)
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
            index, value = _first_non_number(path, candidate)
            if index is not None:
                return DataError(
                    f"{name}, row {_row_text(locate(index))}, column {candidate!r}: "
                    f"expected a number, got {value!r}."
                )
    return DataError(f"{name}: cannot be read as CSV ({message.strip()}).")


def _first_non_number(path: Path, column: str) -> tuple[int | None, str | None]:
    """Index and text of the first cell in `column` that pyarrow cannot convert to float64."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    convert = pa_csv.ConvertOptions(
        column_types={column: pa.string()}, include_columns=[column], strings_can_be_null=False
    )
    strings = pa_csv.read_csv(path, convert_options=convert).column(0)
    offset = 0
    for chunk in strings.chunks:
        try:
            pc.cast(chunk, pa.float64())
        except pa.ArrowInvalid:
            for i, value in enumerate(chunk.to_pylist()):
                try:
                    pc.cast(pa.array([value]), pa.float64())
                except pa.ArrowInvalid:
                    return offset + i, value
        offset += len(chunk)
    return None, None


# ---------------------------------------------------------------------------------------
# Parquet


def _parquet_columns(path: Path, name: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{name}: is not a readable Parquet file ({error}).") from None
    columns = list(schema.names)
    if not columns:
        raise DataError(f"{name}: the Parquet file has no columns.")
    return columns


def _read_parquet(
    path: Path, name: str, wanted: list[str]
) -> tuple[pa.Table, Callable[[int], int | None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def locate(index: int) -> int:
        return index + 1  # Parquet has no header row: data row 1 is row 1.

    try:
        table = pq.read_table(path, columns=wanted)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{name}: is not a readable Parquet file ({error}).") from None
    if table.num_rows == 0:
        raise DataError(f"{name}: has columns ({', '.join(wanted)}) but no data rows.")
    columns = []
    for column_name, column in zip(table.column_names, table.columns, strict=True):
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise DataError(
                f"{name}, column {column_name!r}: has type {column.type}; expected a numeric "
                f"column (first value: {column[0].as_py()!r})."
            )
        columns.append(column.cast(pa.float64()))
    return pa.table(columns, names=table.column_names), locate


# ---------------------------------------------------------------------------------------
# Checks shared by both formats


def _check_values(table: pa.Table, name: str, locate: Callable[[int], int | None]) -> None:
    """Blank cells and NaN/infinity are errors: least squares has no answer with them."""
    import pyarrow.compute as pc

    for column_name, column in zip(table.column_names, table.columns, strict=True):
        if column.null_count:
            index = pc.index(pc.is_null(column), True).as_py()
            raise DataError(
                f"{name}, row {_row_text(locate(index))}, column {column_name!r}: "
                "blank cell; expected a number."
            )
        finite = pc.is_finite(column)
        if not pc.all(finite).as_py():
            index = pc.index(finite, False).as_py()
            value = column[index].as_py()
            raise DataError(
                f"{name}, row {_row_text(locate(index))}, column {column_name!r}: "
                f"expected a finite number, got {value!r}; remove or fill in the row."
            )


def _row_text(row: int | None) -> str:
    return "?" if row is None else str(row)
