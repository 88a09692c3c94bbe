"""One streaming pass over the raw columns: what the plan is built from.

`scan` reads the feature, target and weight columns of some pieces once and returns a
`ScanStats`: per categorical column the count of every level, per column the missing
cells and the first rows holding them, per numeric column the count and the exact sum
of its observed values (for the mean) and a median sketch. `ScanStats.merge` combines
the scans of shards or processes (plain picklable data: torchrun's all_gather_object
carries it); the result does not depend on the chunking, the shards or the split.

Exact sums: each value is an integer mantissa times a power of two; the mantissas are
split in halves and summed per exponent (numpy, exactly: the partial sums stay below
2**53), then shifted into one Python integer. The mean is that exact sum divided by
the count, rounded once.

The median sketch keeps every observed value while a column has at most
MEDIAN_SAMPLE of them (the median is then exact); beyond, the MEDIAN_SAMPLE values
whose hash (of the value and the row's numbers) is smallest: a deterministic,
mergeable uniform sample whose median is approximate, and said to be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.defaults import CHUNK_ROWS

if TYPE_CHECKING:
    from toolkit.io.sources import DataSource
    from toolkit.io.tables_plan import TableOptions

# Values a median sketch keeps per column.
MEDIAN_SAMPLE = 1 << 20
# Rows with missing values a scan remembers per column (for messages).
FIRST_ROWS = 5


@dataclass(frozen=True)
class RowRef:
    """Where a row is, as a user sees it: the file's name and the row (None: not found)."""

    name: str
    row: int | None


@dataclass
class ColumnStats:
    """What the scan saw of one raw column (plain data: picklable, mergeable)."""

    name: str
    kind: str  # columns.NUMERIC or columns.CATEGORICAL
    raw_type: str  # one of columns.RAW_TYPES
    role: str = "feature"  # "feature", "target" or "weight"
    rows: int = 0  # cells seen
    missing: int = 0  # missing cells
    first_missing: list[RowRef] = field(default_factory=list)  # in file order
    levels: dict[str, int] = field(default_factory=dict)  # categorical: level text -> count
    count: int = 0  # numeric: observed (not missing) values
    exact_sum: int = 0  # numeric: their sum times 2**SUM_SHIFT, exactly
    sketch_hash: Any = None  # median: np.uint64 hashes of the kept values (None: not kept)
    sketch_value: Any = None  # median: np.float64 kept values

    @property
    def mean(self) -> float:
        """The mean of the observed values, from the exact sum (rounded once)."""
        raise NotImplementedError

    @property
    def median(self) -> float:
        """The median of the observed values (exact, or of the sketch: see `median_exact`)."""
        raise NotImplementedError

    @property
    def median_exact(self) -> bool:
        return self.count <= MEDIAN_SAMPLE


@dataclass
class ScanStats:
    """The scan of some pieces: one `ColumnStats` per raw column, in the blocks' order."""

    columns: dict[str, ColumnStats]
    rows: int = 0  # rows seen
    missing_rows: int = 0  # rows with at least one missing cell
    first_missing_rows: list[RowRef] = field(default_factory=list)

    @classmethod
    def merge(cls, parts: Sequence[ScanStats]) -> ScanStats:
        """The scan of the pieces of `parts` together (in order: rank 0 first)."""
        raise NotImplementedError

    def missing_error(self, name: str) -> Any:
        """The DataError saying how many rows and cells of `name` are missing, where."""
        raise NotImplementedError


def scan(
    source: DataSource,
    pieces: Sequence[Any] | None = None,
    rows: int = CHUNK_ROWS,
    options: TableOptions | None = None,
) -> ScanStats:
    """One pass over `pieces` of `source` (default: all of them) reading its raw feature,
    target and weight columns in chunks of `rows`, per `options` (default TableOptions()).

    A categorical column with more than defaults.MAX_DISTINCT_LEVELS distinct values is
    a DataError naming it. Median sketches are kept only under `options.missing ==
    "median"`.
    """
    raise NotImplementedError
