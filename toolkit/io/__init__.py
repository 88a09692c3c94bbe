"""Reading and writing tables: CSV and Parquet through pyarrow, never torch.

Training and `toolkit predict` read files through this one reader, so format detection,
chunking and the wording of errors (file, row, column, value) are the same everywhere.
"""

from toolkit.io.data import (
    SEED_NAME,
    Dataset,
    DataSource,
    Piece,
    Shard,
    csv_options,
    holdout_mask,
    load_dataset,
    open_source,
    resolve_sources,
    select_columns,
)

__all__ = [
    "SEED_NAME",
    "DataSource",
    "Dataset",
    "Piece",
    "Shard",
    "csv_options",
    "holdout_mask",
    "load_dataset",
    "open_source",
    "resolve_sources",
    "select_columns",
]
