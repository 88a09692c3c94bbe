"""The data pass starts before torch is imported, so parsing overlaps the import.

Importing torch takes 1-2 s, as long as parsing a few hundred MB of CSV. For a single
process, training opens the data and starts the reading thread first (a bad path or
column is reported without importing torch at all), then imports torch while the first
blocks are parsed. Under torchrun the piece a process reads depends on its rank, which
the process group confirms after torch is up: those processes start reading then.
A raw table whose columns need a plan (categorical columns, filled gaps) is scanned
first (toolkit/training/tables.py): its reading starts after the scan, with the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit.errors import DataError
from toolkit.io import open_source
from toolkit.training.distributed import launched

if TYPE_CHECKING:
    from toolkit.io import DataSource
    from toolkit.io.blocks import Prefetch
    from toolkit.training.config import TrainConfig
    from toolkit.training.distributed import Group

# Blocks parsed ahead while torch imports: 8 blocks of 65,536 rows are ~0.9 s of CSV
# parsing here, at 11 MiB a block for 21 columns. 16 covered the whole import but cost
# 120 MiB more peak RSS (648 against 530 MiB on 2M x 21 Parquet); memory wins.
HEAD_START_BLOCKS = 8


@dataclass
class EarlyRead:
    """The opened data and, for a single process, its reading thread already under way."""

    source: DataSource | None = None
    blocks: Prefetch | None = None
    plain: bool | None = None  # a numeric table read as before tables (None: not known yet)

    def opened(self, config: TrainConfig, group: Group) -> DataSource:
        """The data: opened already, or now by every process together (torchrun)."""
        if self.source is None:
            self.source = group.agree(lambda: open_source(*columns(config)))
        return self.source

    def take_blocks(self) -> Prefetch | None:
        """The started reader (once): the first pass reads from it instead of starting anew."""
        blocks, self.blocks = self.blocks, None
        return blocks

    def close(self) -> None:
        """Stop a reader nobody took (an error came first)."""
        if self.blocks is not None:
            self.blocks.close()
            self.blocks = None


def columns(config: TrainConfig) -> tuple[Any, ...]:
    """What `open_source` takes: the data, its targets, features and weight column, and
    the table options (text and boolean features are accepted, to be planned)."""
    from toolkit.training.tables import options_of

    return config.data, config.targets, config.features, config.weight, options_of(config)


def start(config: TrainConfig) -> EarlyRead:
    """Open the data and start reading every row (single process only; no torch here)."""
    if launched():
        return EarlyRead()  # every process opens the data together, after joining
    from toolkit.training.tables import is_plain

    try:
        source = open_source(*columns(config))
        plain = is_plain(source, columns(config)[-1])  # reads a CSV file's first block
    except DataError:
        # What the first rows say waits until the device is checked (a missing GPU is
        # reported before the data's problems, as when only the header was read here).
        return EarlyRead()
    if not plain:
        return EarlyRead(source, plain=False)  # the blocks are the plan's, after the scan
    blocks = source.start_blocks(
        source.pieces(), config.chunk_rows, progress=config.progress, depth=HEAD_START_BLOCKS
    )
    return EarlyRead(source, blocks, plain=True)
