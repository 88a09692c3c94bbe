"""Reading and writing tables: CSV and Parquet through pyarrow, never torch.

Training and `toolkit predict` read files through this one reader, so format detection,
chunking and the wording of errors (file, row, column, value) are the same everywhere.

Modules, by concern:
    shards    Shard (one file) and Piece (the part of it one process reads)
    formats   the registry: format name -> reader module; detection by suffix or magic
    csv       CSV in line-aligned slices, each parsed by pyarrow's threads (csvslices)
    csvrows   CSV as Python's csv module reads it: the header, rows as numbered in the
              file, and the explanation of a bad row (row, column, value)
    parquet   Parquet row batches
    blocks    float64 blocks from Arrow batches, their checks, the prefetch thread
    reader    the one reader (`read_piece`) and predict's input (`open_input`)
    sources   training data: shards, column selection, pieces for torchrun, the seed set
    globs     --data patterns: each file once, no walking around symlink loops
    names     column names in messages: shown, matched loosely, a doubtful header named
    kinds     what each raw column is: numeric or categorical, and its raw type
    scanner   one pass over the raw columns: levels, missing counts, exact sums, medians
    exact     exact float64 sums and the median sketch's hashes
    rows      rows as a user sees them, found on demand (for messages)
    tables_plan  TableOptions and build_plan: from a scan to a columns.TablePlan
    encode    the one encoder: raw Arrow columns to float64 per a TablePlan
    planned   a DataSource's blocks through its plan: missing values dropped, filled
              or refused
    selection --data to shards, --target/--features/--weight to columns
    holdout   the seeded validation split
    memory    a whole data set in memory (`load_dataset`: tests and benchmarks)
    writers   prediction output: CSV, JSON Lines, Parquet
"""

from toolkit.io.csv import csv_options
from toolkit.io.encode import Encoded, encode
from toolkit.io.formats import FORMATS, detect, format_named
from toolkit.io.holdout import holdout_mask
from toolkit.io.kinds import ColumnKind
from toolkit.io.memory import Dataset, load_dataset
from toolkit.io.planned import Dropped
from toolkit.io.reader import Batch, Input, open_input, read_piece
from toolkit.io.scanner import ColumnStats, ScanStats, scan
from toolkit.io.shards import Piece, Shard
from toolkit.io.sources import SEED_NAME, DataSource, open_source, resolve_sources, select_columns
from toolkit.io.tables_plan import TableOptions, build_plan, needs_plan, plan_source
from toolkit.io.writers import PredictionWriter, output_format

__all__ = [
    "FORMATS",
    "SEED_NAME",
    "Batch",
    "ColumnKind",
    "ColumnStats",
    "DataSource",
    "Dataset",
    "Dropped",
    "Encoded",
    "Input",
    "Piece",
    "PredictionWriter",
    "ScanStats",
    "Shard",
    "TableOptions",
    "build_plan",
    "csv_options",
    "detect",
    "encode",
    "format_named",
    "holdout_mask",
    "load_dataset",
    "needs_plan",
    "open_input",
    "open_source",
    "output_format",
    "plan_source",
    "read_piece",
    "resolve_sources",
    "scan",
    "select_columns",
]
