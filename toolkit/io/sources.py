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
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from toolkit.defaults import CHUNK_ROWS, DEFAULT_TARGET
from toolkit.errors import DataError, UsageError
from toolkit.io.blocks import PREFETCH_BLOCKS, Prefetch, check_weights
from toolkit.io.csv import hint_categorical
from toolkit.io.formats import FORMATS, open_shard
from toolkit.io.names import csv_header_hint, listed, numeric_header
from toolkit.io.reader import read_piece
from toolkit.io.selection import resolve_sources, select_columns
from toolkit.io.shards import Piece, Shard

if TYPE_CHECKING:
    from toolkit.columns import TablePlan
    from toolkit.io.kinds import ColumnKind
    from toolkit.io.planned import Dropped
    from toolkit.io.tables_plan import TableOptions

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
    # The table plan (`with_plan`): blocks then hold the encoded features, named in
    # `feature_names`; the raw columns they come from are `raw_feature_names`.
    plan: TablePlan | None = None
    raw_feature_names: list[str] = field(default_factory=list)
    # What --missing drop dropped in the last pass of `blocks` (of the pieces it read).
    dropped: Dropped = field(default=None, repr=False)  # type: ignore[assignment]
    # Rows already in memory (toolkit.io.tables): later passes keep them there, not on disk.
    in_memory: ClassVar[bool] = False
    # `kinds` by options: opening a source checks them and training asks again, and for
    # CSV each answer parses the first block of the file.
    _kinds: dict[Any, list[ColumnKind]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        from toolkit.io.planned import Dropped

        if not self.raw_feature_names:
            self.raw_feature_names = list(self.feature_names)
        if self.dropped is None:
            self.dropped = Dropped()

    def kinds(self, options: TableOptions) -> list[ColumnKind]:
        """The kinds of the raw feature columns (see `toolkit.io.kinds.feature_kinds`)."""
        from toolkit.io.kinds import feature_kinds

        if options not in self._kinds:
            self._kinds[options] = feature_kinds(self, options)
        return list(self._kinds[options])

    def with_plan(self, plan: TablePlan) -> DataSource:
        """This source reading through `plan`: its blocks hold the encoded features
        (`feature_names` = plan.encoded_names) and its missing values follow plan.missing.

        The plan's raw columns must be this source's raw features, in order.
        """
        from toolkit.io.planned import Dropped

        if plan.raw_names != self.raw_feature_names:
            raise UsageError(
                f"the table plan's columns ({listed(plan.raw_names)}) are not the data's "
                f"features ({listed(self.raw_feature_names)}); select the same columns."
            )
        return replace(
            self,
            feature_names=plan.encoded_names,
            plan=plan,
            raw_feature_names=list(self.raw_feature_names),
            dropped=Dropped(),
        )

    @property
    def planned(self) -> bool:
        """Whether blocks go through the table plan (else today's all-number fast path)."""
        plan = self.plan
        return plan is not None and not (
            plan.trivial and plan.missing == "error" and not plan.na_values
        )

    def arrow_schemas(
        self, names: Sequence[str], na_values: Sequence[str] = ()
    ) -> list[tuple[str, Any, bool]]:
        """(name, Arrow schema of `names`, whether read from CSV) per shard whose types are
        known without reading it all (see `toolkit.io.kinds.file_schemas`)."""
        from toolkit.io.kinds import file_schemas

        return file_schemas(self.shards, names, na_values)

    def raw_batches(
        self,
        pieces: Sequence[Any],
        kinds: Sequence[ColumnKind],
        rows: int = CHUNK_ROWS,
        na_values: Sequence[str] = (),
        bar: Any = None,
    ) -> Iterator[Any]:
        """Batches of the raw `kinds` columns (`.data`, `.name`, `.row(index)`), in order."""
        from toolkit.io.planned import file_raw_batches

        return file_raw_batches(self, pieces, kinds, rows, na_values, bar)

    def missing_error(self, first: str = "") -> DataError:
        """The error about missing values: a pass over every piece counts them all."""
        from toolkit.io.planned import missing_error

        return missing_error(self, first)

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
        if self.planned:
            from toolkit.io.planned import Dropped, planned_blocks

            self.dropped = Dropped()
            try:
                yield from planned_blocks(self, pieces, rows, bar)
            finally:
                if bar is not None:
                    bar.close()
            return
        columns = self.columns
        try:
            for piece in pieces:
                count = 0
                for batch in read_piece(piece, columns, rows, bar=bar, hashed=self._hashed):
                    block = self._block(batch)
                    if self.weight_name is not None:
                        check_weights(block[:, -1], batch.name, batch.row, self.weight_name)
                    count += len(block)
                    yield block
                if count == 0 and piece.whole:
                    shard = piece.shard
                    no_rows = FORMATS[shard.format].no_rows(shard, columns)
                    raise DataError(f"{shard.name}: {no_rows}")
        except DataError as error:
            hinted = hint_categorical(error, self.feature_names)
            if hinted is None:
                raise
            raise hinted from error
        finally:
            if bar is not None:
                bar.close()

    def _block(self, batch: Any) -> np.ndarray:
        """The batch's checked block; a blank cell's error counts every missing value."""
        try:
            return batch.block(finite=True)
        except DataError as error:
            if any(column.null_count for column in batch.data.columns):
                raise self.missing_error(str(error)) from error
            raise

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
    options: TableOptions | None = None,
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

    Without `options` every feature must be numeric (as before tables); with them
    (toolkit.io.tables_plan.TableOptions) text, boolean and dictionary features are
    accepted, their kinds checked here (`DataSource.kinds`; a CSV file's first block is
    read), to be scanned and planned before their blocks are read (`with_plan`).
    """
    if isinstance(path, DataSource):
        return path
    if path is not None and not isinstance(path, (str, Path)):
        from toolkit.io.tables import open_table  # it builds on this module

        return open_table(path, targets, features, weight=weight, options=options)
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
    checked = (feature_names if options is None else []) + target_names + weights
    for shard in shards:
        FORMATS[shard.format].check(shard, checked)
    notes = _header_note(first) + target_note(targets, target_names)
    source = DataSource(name, shards, feature_names, target_names, notes, weight)
    if options is not None:
        source.kinds(options)  # refuses unreadable types and impossible --categorical now
    return source


def _header_note(first: Shard) -> list[str]:
    if first.format == "csv" and numeric_header(first.columns):
        return [
            f"warning: every column name in {first.name} is a number ({listed(first.columns)}): "
            "is its header row missing? Its first row is read as the column names."
        ]
    return []


def target_note(targets: Sequence[str], target_names: Sequence[str]) -> list[str]:
    """The note saying which column became the target when none was named."""
    if targets or target_names[0] == DEFAULT_TARGET:
        return []
    return [
        f"no column is named {DEFAULT_TARGET!r}: using the last column, "
        f"{target_names[0]!r}, as the target (choose with --target)."
    ]


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
