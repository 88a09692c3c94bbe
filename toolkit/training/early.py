"""The data pass starts before torch is imported, so the pass overlaps the import.

Importing torch takes 1-2 s, as long as parsing a few hundred MB of CSV. For a single
process, training opens the data and starts the reading thread first (a bad path or
column is reported without importing torch at all), then imports torch while the first
blocks are parsed. When the rows are surely summed on the CPU (`--device cpu`, or `auto`
with a PyTorch build without GPU support) and unweighted, the whole pass runs then, in
a thread: split, summed and spilled with numpy alone (toolkit.training.readpass.consume),
while the main thread imports torch; training takes its summary when it gets there.
Under torchrun the piece a process reads depends on its rank, which the process group
confirms after torch is up: those processes start reading then. A raw table whose
columns need a plan (categorical columns, filled gaps) is scanned first
(toolkit/training/tables.py): its reading starts after the scan, with the plan.

An exact fit read by that whole early pass never imports torch (`join`).
"""

from __future__ import annotations

import gc
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit.errors import DataError
from toolkit.io import open_source
from toolkit.training import readpass
from toolkit.training.device import surely_cpu
from toolkit.training.distributed import launched
from toolkit.training.halves import THREADS
from toolkit.training.plain_gram import one_blas_thread

if TYPE_CHECKING:
    from toolkit.io import DataSource
    from toolkit.io.blocks import Prefetch
    from toolkit.training.config import TrainConfig
    from toolkit.training.distributed import Group
    from toolkit.training.spill import RowSpill

# Blocks parsed ahead while torch imports: 8 blocks of 65,536 rows are ~0.9 s of CSV
# parsing here, at 11 MiB a block for 21 columns. 16 covered the whole import but cost
# 120 MiB more peak RSS (648 against 530 MiB on 2M x 21 Parquet); memory wins.
HEAD_START_BLOCKS = 8


@dataclass
class EarlyPass:
    """The whole read pass under way in a thread, the spills it fills, and the file's
    SHA-256 in another where the reader does not hash on the way (Parquet)."""

    summary: Future[readpass.PassSummary]
    digest: Future[str] | None
    train_spill: RowSpill
    val_spill: RowSpill
    reader: Prefetch
    pool: ThreadPoolExecutor
    stop_hashing: threading.Event

    def stop(self) -> None:
        """Stop the reader and the hash, wait for both threads, delete the spills."""
        self.stop_hashing.set()
        self.reader.close()  # the pass ends at its next block
        self.pool.shutdown()
        self.train_spill.close()
        self.val_spill.close()


@dataclass
class EarlyRead:
    """The opened data and, for a single process, its reading thread (or its whole pass)
    already under way."""

    source: DataSource | None = None
    blocks: Prefetch | None = None
    plain: bool | None = None  # a numeric table read as before tables (None: not known yet)
    passing: EarlyPass | None = None

    def opened(self, config: TrainConfig, group: Group) -> DataSource:
        """The data: opened already, or now by every process together (torchrun)."""
        if self.source is None:
            self.source = group.agree(lambda: open_source(*columns(config)))
        return self.source

    def take_blocks(self) -> Prefetch | None:
        """The started reader (once): the first pass reads from it instead of starting anew."""
        blocks, self.blocks = self.blocks, None
        return blocks

    def take_pass(self, source: DataSource) -> EarlyPass | None:
        """The pass under way (once), if it reads `source`: the spills are the taker's."""
        passing, self.passing = self.passing, None
        if passing is not None and source is not self.source:
            passing.stop()  # not the data training reads after all
            return None
        return passing

    def close(self) -> None:
        """Stop a reader or a pass nobody took (an error came first)."""
        if self.blocks is not None:
            self.blocks.close()
            self.blocks = None
        if self.passing is not None:
            self.passing.stop()
            self.passing = None


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
    early = EarlyRead(source, blocks, plain=True)
    if surely_cpu(config.device) and source.weight_name is None:
        early.passing, early.blocks = _start_pass(config, source, blocks), None
    return early


def _start_pass(config: TrainConfig, source: DataSource, blocks: Prefetch) -> EarlyPass:
    """The read pass of `read_pass`, for numpy rows on the CPU, in a thread (no torch)."""
    from toolkit.training.spill import spill_for

    width = len(source.columns)
    train_spill, val_spill = spill_for(source, width), spill_for(source, width)
    pool = ThreadPoolExecutor(2, thread_name_prefix="toolkit-pass")
    stop_hashing = threading.Event()
    digest = None
    if not source.hashed_while_read(source.pieces()):
        digest = pool.submit(source.sha256, stop_hashing)

    def run() -> readpass.PassSummary:
        try:
            with one_blas_thread():
                return readpass.consume(
                    blocks,
                    len(source.feature_names),
                    readpass.val_fraction(config),
                    config.seed,
                    "cpu",
                    train_spill,
                    val_spill,
                    threads=THREADS if source.in_memory else 1,  # as read_pass
                )
        finally:
            blocks.close()  # a failed pass stops the reading thread now

    summary = pool.submit(run)
    return EarlyPass(summary, digest, train_spill, val_spill, blocks, pool, stop_hashing)


def join(config: TrainConfig, early: EarlyRead) -> tuple[Group, Any]:
    """This process's group and device; torch is imported unless the job needs none.

    An exact fit whose whole pass runs here, on the CPU in numpy, needs no torch at all:
    numpy solves it and toolkit.training.torchfile writes the checkpoint. Importing
    torch would be 2 s of a 3 s job on two million rows.
    """
    from toolkit.training.distributed import Group

    if config.solver == "exact" and early.passing is not None:
        return Group(), "cpu"  # the pass runs only where the CPU is surely the device
    import_torch()

    from toolkit.training import distributed
    from toolkit.training.device import resolve_device

    # A missing device fails here, before any row is used.
    return distributed.join(resolve_device(config.device))


def import_torch() -> None:
    """Import torch with cycle collections paused: its import makes objects by the hundred
    thousand, which set off collections worth 8% of the import (1.90 s against 2.07 s,
    medians of 6 fresh processes), and leaves no cyclic garbage worth collecting."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        import torch  # noqa: F401
    finally:
        if was_enabled:
            gc.enable()
