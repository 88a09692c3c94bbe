"""The rows of a split, parked in spill files, and what is computed over every process's rows.

After the one pass over the data, each process holds its rows of each split in `RowSpill`
files; `Rows` reads them back chunk by chunk for every later pass (the QR fallback, the
metrics, each epoch of an iterative solver). The functions below combine a result over the
processes of a torchrun job, always in rank order, so every process gets the same answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.training.halves import THREADS
from toolkit.training.metrics import MetricSums, Model, metric_sums_of
from toolkit.training.plain_gram import one_blas_thread
from toolkit.training.spill import MemorySpill, RowSpill

if TYPE_CHECKING:
    from toolkit.training.distributed import Group
    from toolkit.training.exact import Moments

# Rows of training features kept in the checkpoint for the export's parity gate.
PARITY_SAMPLE_ROWS = 256


@dataclass
class Rows:
    """One process's rows of a split, in spill files: read back chunk by chunk."""

    spills: list[RowSpill]
    chunk_rows: int
    n_features: int
    weighted: bool = False  # the last column holds the rows' weights (--weight)

    @property
    def n_rows(self) -> int:
        return sum(spill.n_rows for spill in self.spills)

    @property
    def in_memory(self) -> bool:
        """Whether every spill keeps its rows in memory (reading them costs no I/O)."""
        return all(isinstance(spill, MemorySpill) for spill in self.spills)

    def chunk_ids(self) -> list[tuple[int, int]]:
        return [
            (s, k)
            for s, spill in enumerate(self.spills)
            for k in range(spill.n_chunks(self.chunk_rows))
        ]

    def blocks(self, ids: Iterable[tuple[int, int]] | None = None) -> Iterator[np.ndarray]:
        for s, k in self.chunk_ids() if ids is None else ids:
            yield self.spills[s].chunk(k, self.chunk_rows)

    def pairs(self) -> Iterator[tuple[np.ndarray, ...]]:
        """(features, targets) chunks in spill order; (features, targets, weights) when
        the rows are weighted."""
        d = self.n_features
        for block in self.blocks():
            if self.weighted:
                yield block[:, :d], block[:, d:-1], block[:, -1]
            else:
                yield block[:, :d], block[:, d:]


@dataclass
class Split:
    """The rows a run trains and reports on, once the validation split is chosen.

    Counts and moments are over every process; `train` and `val` are this process's rows.
    """

    fraction: float  # the share of rows held out (0.0 when the default split was skipped)
    train: Rows
    val: Rows | None  # None: no validation rows on any process
    n_train: int
    n_val: int
    moments: Moments  # of the training rows
    train_shift: np.ndarray  # the targets of the first training row: the metrics' shift
    val_shift: np.ndarray | None
    val_weight_sum: float = 0.0  # the validation rows' sum of weights (their count unweighted)

    @property
    def target_unit(self) -> np.ndarray:
        """The targets' power-of-two units (from the moments): the metric sums' units."""
        return self.moments.unit[-len(self.train_shift) :]


def group_metric_sums(
    group: Group,
    rows: Rows,
    weight: np.ndarray,
    bias: np.ndarray,
    shift: np.ndarray,
    dtype: str = "float64",
    unit: np.ndarray | None = None,
) -> MetricSums:
    """The metric sums over every process's rows (added in rank order), predicted in `dtype`."""
    return group_metric_sums_of(group, rows, [(weight, bias, dtype)], shift, unit)[0]


def group_metric_sums_of(
    group: Group,
    rows: Rows,
    models: list[Model],
    shift: np.ndarray,
    unit: np.ndarray | None = None,
) -> list[MetricSums]:
    """`group_metric_sums` of several models, reading this process's rows once (rows in
    memory are predicted on two threads, with BLAS on one)."""
    threads = THREADS if rows.in_memory else 1
    with one_blas_thread() if threads > 1 else contextlib.nullcontext():
        local = metric_sums_of(rows.pairs(), models, shift, unit, threads)
    parts = group.gather(local)
    totals = list(parts[0])
    for part in parts[1:]:
        totals = [total + more for total, more in zip(totals, part, strict=True)]
    return totals


def combine_r(group: Group) -> Callable[[Any], Any] | None:
    """For the QR fallback: R of the stacked per-process R factors is R of all the rows."""
    if group.world == 1:
        return None

    def combine(r: np.ndarray) -> np.ndarray:
        return np.linalg.qr(np.concatenate(group.gather(r)), mode="r")

    return combine


def combine_sums(group: Group) -> Callable[[list[Any]], list[Any]] | None:
    """For refinement: double-double (hi, lo) sums added over processes, in rank order."""
    if group.world == 1:
        return None

    def combine(sums: list[Any]) -> list[Any]:
        from toolkit.training.refine import dd_sum

        everyone = group.gather(sums)
        return [dd_sum([part[k] for part in everyone]) for k in range(len(sums))]

    return combine


def parity_sample(group: Group, spills: list[RowSpill]) -> np.ndarray:
    """Up to PARITY_SAMPLE_ROWS rows spread over every process's data."""
    count = sum(spill.n_rows for spill in spills)
    rows = _spread(count, PARITY_SAMPLE_ROWS)
    picked, offset = [], 0
    for spill in spills:
        inside = rows[(rows >= offset) & (rows < offset + spill.n_rows)] - offset
        picked.append(spill.take(inside))
        offset += spill.n_rows
    sample = np.concatenate(group.gather(np.concatenate(picked)))
    return sample[_spread(len(sample), PARITY_SAMPLE_ROWS)]


def _spread(n: int, count: int) -> np.ndarray:
    """Up to `count` distinct indices spread evenly over range(n)."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(np.int64))
