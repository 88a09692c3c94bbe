"""Training data: the embedded seed set, or the user's files (one, a folder, a glob), streamed.

Files are read through the one reader (toolkit/io/reader.py) in chunks, so memory is
bounded by `--chunk-rows`, not by the size of the data. Every chunk is checked as it is
read; every error names the file, the row as the user sees it in the file (1-based, the
CSV header is row 1), the column and the value.

The data is one or more shards (a file, a folder, a glob). Under torchrun each process
reads a contiguous part of their bytes (`DataSource.pieces`): a CSV file is cut at line
breaks, a Parquet file between row groups.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from toolkit.defaults import CHUNK_ROWS, DEFAULT_TARGET
from toolkit.errors import DataError, UsageError
from toolkit.io import globs
from toolkit.io.blocks import PREFETCH_BLOCKS, Prefetch, check_weights
from toolkit.io.formats import FORMATS, open_shard, suffixes
from toolkit.io.names import csv_header_hint, did_you_mean, listed, numeric_header
from toolkit.io.reader import read_piece
from toolkit.io.shards import Piece, Shard

SEED_NAME = "<embedded seed data>"
# Files smaller than this read in well under a second: no progress bar.
PROGRESS_MIN_BYTES = 64 << 20


@dataclass
class DataSource:
    """The selected columns of one or more shards, readable chunk by chunk, validated."""

    name: str
    shards: list[Shard]
    feature_names: list[str]
    target_names: list[str]
    notes: list[str] = field(default_factory=list)
    weight_name: str | None = None  # --weight: the rows' weights, the last column of a block
    _hashed: dict[Path, str] = field(default_factory=dict, repr=False)  # SHA-256 by path
    # Rows already in memory (toolkit.io.tables): later passes keep them there, not on disk.
    in_memory: ClassVar[bool] = False

    @property
    def columns(self) -> list[str]:
        """Features, targets, then the weight column if any: the column order of every block."""
        weight = [self.weight_name] if self.weight_name is not None else []
        return self.feature_names + self.target_names + weight

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
                piece = FORMATS[shard.format].cut(shard, begin, end)
                if piece is not None:
                    pieces.append(piece)
            offset += shard.size
        return pieces

    def blocks(
        self,
        pieces: Sequence[Piece] | None = None,
        rows: int = CHUNK_ROWS,
        progress: bool = False,
    ) -> Iterator[np.ndarray]:
        """Validated float64 blocks [features | targets] of at most `rows` rows, in file order.

        `pieces` defaults to every shard whole; `progress` shows a byte bar on stderr
        while large CSV files are read. Reading and checking run in a background thread,
        a few blocks ahead, so that parsing overlaps with the caller's work.
        """
        reader = self.start_blocks(pieces, rows, progress)
        try:
            yield from reader
        finally:
            reader.close()

    def start_blocks(
        self,
        pieces: Sequence[Piece] | None = None,
        rows: int = CHUNK_ROWS,
        progress: bool = False,
        depth: int = PREFETCH_BLOCKS,
    ) -> Prefetch:
        """What `blocks` yields, with the reading thread started now, up to `depth` blocks
        ahead: parsing begins while the caller still prepares (training imports torch)."""
        pieces = self.pieces() if pieces is None else pieces
        streamed = sum(p.nbytes for p in pieces if FORMATS[p.shard.format].STREAMED)
        bar = _byte_bar(streamed, pieces) if progress and streamed >= PROGRESS_MIN_BYTES else None
        return Prefetch(self._checked_blocks(pieces, rows, bar), depth)

    def _checked_blocks(self, pieces: Sequence[Piece], rows: int, bar: Any) -> Iterator[np.ndarray]:
        columns = self.columns
        try:
            for piece in pieces:
                count = 0
                for batch in read_piece(piece, columns, rows, bar=bar, hashed=self._hashed):
                    block = batch.block(finite=True)
                    if self.weight_name is not None:
                        check_weights(block[:, -1], batch.name, batch.row, self.weight_name)
                    count += len(block)
                    yield block
                if count == 0 and piece.whole:
                    shard = piece.shard
                    no_rows = FORMATS[shard.format].no_rows(shard, columns)
                    raise DataError(f"{shard.name}: {no_rows}")
        finally:
            if bar is not None:
                bar.close()

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
        whole = {
            piece.shard.path
            for piece in pieces
            if piece.whole and FORMATS[piece.shard.format].STREAMED
        }
        return all(shard.path in whole for shard in self.shards)


def open_source(
    path: Any = None,
    targets: Sequence[str] = (),
    features: Sequence[str] = (),
    weight: str | None = None,
) -> DataSource:
    """Find the shards behind `path` (the embedded seed data when None) and pick the columns.

    `path` is a file, a folder of `.csv`/`.parquet`/`.pq` shards, or a glob such as
    `data/part-*.csv`; shards are read in name order and must share the selected columns.
    It may also be data in memory: a pyarrow Table or a pandas or polars DataFrame
    (`toolkit.io.tables.open_table`), or a DataSource, returned as it is.
    `targets` defaults to the column named `y`, else the last column; `features`
    defaults to every column that is not a target (nor the `weight` column, which holds
    each row's weight for weighted least squares). Only headers and Parquet schemas are
    read here; `DataSource.blocks` reads the rows.
    """
    if isinstance(path, DataSource):
        return path
    if path is not None and not isinstance(path, (str, Path)):
        from toolkit.io.tables import open_table  # it builds on this module

        return open_table(path, targets, features, weight=weight)
    if path is None:
        seed = Path(str(resources.files("toolkit") / "datasets" / "seed.csv"))
        shards, name = [open_shard(seed, SEED_NAME)], SEED_NAME
    else:
        shards = [open_shard(source, str(source)) for source in resolve_sources(path)]
        name = shards[0].name if len(shards) == 1 else f"{path} ({len(shards)} shards)"
    first = shards[0]
    hint = csv_header_hint(first.columns) if first.format == "csv" else ""
    feature_names, target_names = select_columns(
        first.columns, targets, features, first.name, hint=hint, weight=weight
    )
    for shard in shards[1:]:  # every later shard must hold the columns the first resolved to
        select_columns(shard.columns, target_names, feature_names, shard.name, weight=weight)
    weights = [weight] if weight is not None else []
    for shard in shards:
        FORMATS[shard.format].check(shard, feature_names + target_names + weights)
    notes = []
    if first.format == "csv" and numeric_header(first.columns):
        notes.append(
            f"warning: every column name in {first.name} is a number ({listed(first.columns)}): "
            "is its header row missing? Its first row is read as the column names."
        )
    return DataSource(
        name,
        shards,
        feature_names,
        target_names,
        notes + target_note(targets, target_names),
        weight,
    )


def target_note(targets: Sequence[str], target_names: Sequence[str]) -> list[str]:
    """The note saying which column became the target when none was named."""
    if targets or target_names[0] == DEFAULT_TARGET:
        return []
    return [
        f"no column is named {DEFAULT_TARGET!r}: using the last column, "
        f"{target_names[0]!r}, as the target (choose with --target)."
    ]


def resolve_sources(path: str | Path) -> list[Path]:
    """The data files behind --data: one file, a folder's shards, or a glob's matches."""
    text = str(path)
    if globs.has_magic(text):
        matches = globs.expand(text)  # each file once, however many symlinks lead to it
        if not matches:
            raise UsageError(f"--data {text!r} matches no files.")
        return matches
    path = Path(path)
    if not path.exists():
        raise UsageError(f"data file {text!r} does not exist.")
    if path.is_dir():
        known = suffixes()
        shards = globs.once(p for p in path.iterdir() if p.suffix.lower() in known)
        if not shards:
            listed = f"{', '.join(known[:-1])} or {known[-1]}"
            raise UsageError(f"data folder {text!r} holds no {listed} files; expected shards.")
        return shards
    return [path]


def select_columns(
    columns: Sequence[str],
    targets: Sequence[str],
    features: Sequence[str],
    name: str,
    *,
    hint: str = "",
    weight: str | None = None,
) -> tuple[list[str], list[str]]:
    """Resolve --target/--features against the file's columns; unknown names are usage errors.

    `hint` (a sentence about the header, see `names.csv_header_hint`) ends the messages
    about the file's columns.
    """
    if len(columns) < 2 and not features:
        raise DataError(
            f"{name}: found 1 column ({columns[0]!r}); expected at least 2 "
            f"(one or more features and a target).{hint}"
        )
    given = [("--target", targets), ("--features", features)]
    for flag, names in [*given, ("--weight", [weight] if weight is not None else [])]:
        for column in names:
            if column not in columns:
                raise UsageError(_unknown_column(column, flag, columns, name) + hint)
        duplicates = sorted({c for c in names if list(names).count(c) > 1})
        if duplicates:
            raise UsageError(f"{flag} names {duplicates[0]!r} more than once.")
    if targets:
        target_names = list(targets)
    else:
        last = [c for c in columns if c != weight][-1]
        target_names = [DEFAULT_TARGET if DEFAULT_TARGET in columns else last]
    for flag, names in given:
        if weight in names:
            raise UsageError(
                f"column {weight!r} is the --weight column and cannot also be in {flag}; "
                "pick one."
            )
    both = [c for c in features if c in target_names]
    if both:
        raise UsageError(f"column {both[0]!r} is both a feature and a target; pick one.")
    feature_names = list(features) or [
        c for c in columns if c not in target_names and c != weight
    ]
    if not feature_names:
        raise UsageError(f"{name}: every column is a target; at least one feature is needed.")
    return feature_names, target_names


def _unknown_column(column: str, flag: str, columns: Sequence[str], name: str) -> str:
    message = f"unknown column {column!r} in {flag}; {name} has columns {listed(columns)}."
    close = did_you_mean(column, columns)  # case does not count: totemp finds TOTEMP
    if close is not None:
        message += f" Did you mean {close!r}?"
    return message


def _sha256(path: Path, stop: threading.Event | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            if stop is not None and stop.is_set():
                return ""
            digest.update(block)
    return digest.hexdigest()


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
