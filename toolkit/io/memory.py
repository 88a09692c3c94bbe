"""A whole data set in memory: a thin helper on top of the streaming reader.

For small data, tests and benchmarks: `load_dataset` reads every block that
`DataSource.blocks` yields (so the same checks and errors apply) into one float64 Arrow
table. Training itself streams and never calls this.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from toolkit.defaults import CHUNK_ROWS
from toolkit.io.blocks import to_block
from toolkit.io.sources import open_source

if TYPE_CHECKING:
    import pyarrow as pa


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
        self, rows: int = CHUNK_ROWS, select: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (features, targets) float64 blocks of at most `rows` rows, in file order.

        `select` is an optional boolean mask over all rows; only rows where it is True
        are yielded.
        """
        d = len(self.feature_names)
        offset = 0
        for batch in self.table.to_batches(max_chunksize=rows):
            k = batch.num_rows
            block = to_block(batch)
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
