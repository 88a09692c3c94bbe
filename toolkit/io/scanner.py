"""One streaming pass over the raw columns: what the plan is built from.

`scan` reads the feature, target and weight columns of some pieces once and returns a
`ScanStats`: per categorical column the count of every level, per column the missing
cells and the first rows holding them, per numeric column the count and the exact sum
of its observed values (for the mean) and, under --missing median, a median sketch.
`ScanStats.merge` combines the scans of shards or processes (plain picklable data:
torchrun's all_gather_object carries it); the result does not depend on the chunking,
the shards or the split.

Exact sums (toolkit/io/exact.py): the mean is the exact sum divided by the count,
rounded once, whatever the order the values came in.

The median sketch keeps every observed value while a column has at most MEDIAN_SAMPLE
of them (the median is then exact); beyond, the MEDIAN_SAMPLE values whose hash (of the
row's numbers and the column) is smallest: a deterministic, mergeable uniform sample,
whose median is approximate and said to be.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.columns import CATEGORICAL, NUMERIC
from toolkit.defaults import CHUNK_ROWS, MAX_DISTINCT_LEVELS
from toolkit.errors import DataError
from toolkit.io import exact
from toolkit.io.encode import level_texts, missing_mask, normalize, numbers
from toolkit.io.kinds import ColumnKind
from toolkit.io.rows import RowRef, first_rows_text, row_ref

__all__ = ["ColumnStats", "ScanStats", "first_rows_text", "scan"]

if TYPE_CHECKING:
    from toolkit.io.sources import DataSource
    from toolkit.io.tables_plan import TableOptions

# Values a median sketch keeps per column.
MEDIAN_SAMPLE = 1 << 20
# Rows with missing values a scan remembers, per column and in all (for messages).
FIRST_ROWS = 5


@dataclass
class ColumnStats:
    """What the scan saw of one raw column (plain data: picklable, mergeable)."""

    name: str
    kind: str  # columns.NUMERIC or columns.CATEGORICAL
    raw_type: str  # one of columns.RAW_TYPES
    role: str = "feature"  # "feature", "target" or "weight"
    missing: int = 0  # missing cells
    first_missing: list[RowRef] = field(default_factory=list)  # in file order
    levels: dict[str, int] = field(default_factory=dict)  # categorical: level text -> count
    count: int = 0  # numeric: observed (not missing) values
    exact_sum: int = 0  # numeric: their sum times 2**exact.SHIFT, exactly
    sketch_hash: np.ndarray | None = None  # median: uint64 hashes of the kept values
    sketch_value: np.ndarray | None = None  # median: the kept values (float64)

    @property
    def mean(self) -> float:
        """The mean of the observed values: the exact sum over the count, rounded once."""
        return exact.mean(self.exact_sum, self.count)

    @property
    def median(self) -> float:
        """The median of the observed values (exact, or of the sketch: `median_exact`)."""
        if self.sketch_value is None or not len(self.sketch_value):
            return float("nan")
        return float(np.median(self.sketch_value))

    @property
    def median_exact(self) -> bool:
        """Whether `median` is of every observed value (else of a uniform sample)."""
        return self.count <= MEDIAN_SAMPLE

    def absorb(self, other: ColumnStats) -> None:
        """Add `other`'s counts (the same column, later rows) to these."""
        self.missing += other.missing
        self.first_missing = (self.first_missing + other.first_missing)[:FIRST_ROWS]
        for level, count in other.levels.items():
            self.levels[level] = self.levels.get(level, 0) + count
        self.count += other.count
        self.exact_sum += other.exact_sum
        if other.sketch_value is not None:
            self._sketch(other.sketch_hash, other.sketch_value)

    def _sketch(self, hashes: Any, values: Any) -> None:
        if self.sketch_value is not None:
            hashes = np.concatenate([self.sketch_hash, hashes])
            values = np.concatenate([self.sketch_value, values])
        self.sketch_hash, self.sketch_value = hashes, values
        if len(values) > 2 * MEDIAN_SAMPLE:  # pruned now and then: sorting costs
            self.prune()

    def prune(self) -> None:
        """Keep the sketch's MEDIAN_SAMPLE smallest (hash, value) pairs: the same values
        whatever order they came in, and however often it was pruned before."""
        values, hashes = self.sketch_value, self.sketch_hash
        if values is not None and len(values) > MEDIAN_SAMPLE:
            order = np.lexsort((values, hashes))[:MEDIAN_SAMPLE]
            self.sketch_hash, self.sketch_value = hashes[order], values[order]


@dataclass
class ScanStats:
    """The scan of some pieces: one `ColumnStats` per raw column (features, targets, the
    weight), in the blocks' order."""

    columns: dict[str, ColumnStats]
    name: str = "the data"  # how messages name the data (the source's name)
    rows: int = 0  # rows seen
    missing_rows: int = 0  # rows with at least one missing cell
    first_missing_rows: list[RowRef] = field(default_factory=list)

    @classmethod
    def merge(cls, parts: Sequence[ScanStats]) -> ScanStats:
        """The scan of the pieces of `parts` together (in order: rank 0 first)."""
        first = parts[0]
        merged = cls(
            {
                name: ColumnStats(name, c.kind, c.raw_type, c.role)
                for name, c in first.columns.items()
            },
            first.name,
        )
        for part in parts:
            merged.rows += part.rows
            merged.missing_rows += part.missing_rows
            merged.first_missing_rows = (merged.first_missing_rows + part.first_missing_rows)[
                :FIRST_ROWS
            ]
            for name, column in part.columns.items():
                merged.columns[name].absorb(column)
        for column in merged.columns.values():
            _check_distinct(column, merged.name)
            column.prune()
        return merged

    def missing_summary(self) -> str:
        """ "12 rows have missing values (17 cells: 'x' 5, 'firm' 12); first rows: 3, 8, 19.\""""
        cells = sum(c.missing for c in self.columns.values())
        each = ", ".join(f"{c.name!r} {c.missing}" for c in self.columns.values() if c.missing)
        rows = "1 row has" if self.missing_rows == 1 else f"{self.missing_rows} rows have"
        return (
            f"{rows} missing values ({cells} cell{'s' if cells != 1 else ''}: {each}); "
            f"first {'rows' if len(self.first_missing_rows) > 1 else 'row'}: "
            f"{first_rows_text(self.first_missing_rows)}."
        )

    def missing_error(self, name: str, first: str = "") -> DataError:
        """The DataError saying how many rows and cells of `name` are missing, and where;
        `first` (a sentence about the first missing cell) leads it when given."""
        lead = f"{first} In all, " if first else f"{name}: "
        return DataError(
            f"{lead}{self.missing_summary()} Choose --missing drop, mean or median, or fill "
            "them in."
        )


def scan(
    source: DataSource,
    pieces: Sequence[Any] | None = None,
    rows: int = CHUNK_ROWS,
    options: TableOptions | None = None,
    kinds: Sequence[ColumnKind] | None = None,
) -> ScanStats:
    """One pass over `pieces` of `source` (default: all of them) reading its raw feature,
    target and weight columns in chunks of `rows`, per `options` (default TableOptions()).

    `kinds`: the features' kinds when already known (default: `source.kinds(options)`).
    A categorical column with more than defaults.MAX_DISTINCT_LEVELS distinct values is
    a DataError naming it. Under --missing drop levels and numbers are counted over the
    rows that will be kept (as R's `lm` drops the levels only dropped rows held); the
    missing cells over every row. Median sketches are kept only under `options.missing ==
    "median"`.
    """
    from toolkit.io.tables_plan import TableOptions

    options = TableOptions() if options is None else options
    features = list(source.kinds(options) if kinds is None else kinds)
    roles = {k.name: "feature" for k in features}
    numeric = [ColumnKind(n, NUMERIC, "float") for n in source.target_names]
    roles |= {n: "target" for n in source.target_names}
    if source.weight_name is not None:
        numeric.append(ColumnKind(source.weight_name, NUMERIC, "float"))
        roles[source.weight_name] = "weight"
    every = features + numeric
    stats = ScanStats(
        {k.name: ColumnStats(k.name, k.kind, k.raw_type, roles[k.name]) for k in every},
        source.name,
    )
    median = options.missing == "median"
    drop = options.missing == "drop"  # levels and numbers of the rows that are kept
    pieces = source.pieces() if pieces is None else pieces
    # Closed on any error: a CSV reader left open keeps pyarrow's threads alive.
    with contextlib.closing(source.raw_batches(pieces, every, rows, options.na_values)) as raw:
        for batch in raw:
            _scan_batch(stats, batch, every, options.na_values, median, drop)
    for column in stats.columns.values():
        column.prune()
    return stats


def _scan_batch(
    stats: ScanStats,
    batch: Any,
    kinds: Sequence[ColumnKind],
    na_values: Sequence[str],
    median: bool,
    complete: bool = False,
) -> None:
    """Add one batch to `stats`; with `complete`, levels and numbers only of the rows
    without a missing cell (those --missing drop keeps)."""
    data = batch.data
    stats.rows += data.num_rows
    arrays = [normalize(data.column(k.name), k.kind, k.raw_type) for k in kinds]
    gaps = [missing_mask(a, k.kind, na_values) for a, k in zip(arrays, kinds, strict=True)]
    any_gap = np.logical_or.reduce(gaps) if gaps else np.zeros(data.num_rows, dtype=bool)
    _note_missing(stats, batch, kinds, gaps, any_gap)
    for kind, array, gap in zip(kinds, arrays, gaps, strict=True):
        column = stats.columns[kind.name]
        skip = any_gap if complete else gap
        if kind.kind == CATEGORICAL:
            _count_levels(column, array, skip, batch.name)
            continue
        observed = numbers(array)
        observed = observed[~skip] if skip.any() else observed
        _check_finite(observed, skip, kind.name, batch)
        column.count += len(observed)
        column.exact_sum += exact.exact_sum(observed)
    if median:
        _sketch_batch(stats, kinds, arrays, [any_gap if complete else g for g in gaps])


def _note_missing(
    stats: ScanStats,
    batch: Any,
    kinds: Sequence[ColumnKind],
    gaps: Sequence[np.ndarray],
    any_gap: np.ndarray,
) -> None:
    """Count the batch's missing cells and rows, and remember the first rows."""
    for kind, gap in zip(kinds, gaps, strict=True):
        if gap.any():
            column = stats.columns[kind.name]
            column.missing += int(gap.sum())
            room = FIRST_ROWS - len(column.first_missing)
            column.first_missing += [row_ref(batch, int(i)) for i in np.flatnonzero(gap)[:room]]
    if any_gap.any():
        stats.missing_rows += int(any_gap.sum())
        room = FIRST_ROWS - len(stats.first_missing_rows)
        stats.first_missing_rows += [
            row_ref(batch, int(i)) for i in np.flatnonzero(any_gap)[: max(room, 0)]
        ]


def _count_levels(column: ColumnStats, array: Any, gap: np.ndarray, name: str) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = level_texts(array)
    if gap.any():
        texts = texts.filter(pa.array(~gap))
    if not len(texts):
        return
    counted = pc.value_counts(texts)
    levels = column.levels
    for level, count in zip(
        counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
    ):
        levels[level] = levels.get(level, 0) + count
    _check_distinct(column, name)


def _check_distinct(column: ColumnStats, name: str) -> None:
    if len(column.levels) > MAX_DISTINCT_LEVELS:
        raise DataError(
            f"{name}, column {column.name!r}: more than {MAX_DISTINCT_LEVELS:,} distinct values; "
            "too many for a categorical column (an identifier?). Leave it out with --features."
        )


def _check_finite(observed: np.ndarray, gap: np.ndarray, column: str, batch: Any) -> None:
    """NaN and infinity that are not missing values are errors, as in the blocks."""
    if np.isfinite(observed).all():
        return
    index = int(np.flatnonzero(~gap)[np.argmax(~np.isfinite(observed))])
    value = float(observed[np.argmax(~np.isfinite(observed))])
    raise DataError(
        f"{batch.name}, row {row_ref(batch, index).text}, column {column!r}: expected a finite "
        f"number, got {value!r}; remove or fill in the row, or name it with --na-values."
    )


def _sketch_batch(
    stats: ScanStats, kinds: Sequence[ColumnKind], arrays: Sequence[Any], gaps: Sequence[np.ndarray]
) -> None:
    """Add each numeric feature's observed values, with their hashes, to its sketch."""
    numeric = [i for i, k in enumerate(kinds) if k.kind == NUMERIC]
    if not numeric:
        return
    matrix = np.column_stack([numbers(arrays[i]) for i in numeric])
    matrix = np.where(np.isnan(matrix), 0.0, matrix)  # missing cells hash as 0.0
    row_hash = exact.row_hash(matrix)
    for position, i in enumerate(numeric):
        kind, gap = kinds[i], gaps[i]
        if stats.columns[kind.name].role != "feature":
            continue
        keep = ~gap
        hashes = exact.mix(row_hash ^ exact.column_salt(position))
        stats.columns[kind.name]._sketch(hashes[keep], matrix[keep, position])
