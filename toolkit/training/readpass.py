"""The one pass over the data: parse and check every row once, split it, sum it, spill it.

Each process reads its piece of the data and returns a `PassSummary`: the moments of its
training and validation rows (what the exact solver needs, and the iterative solvers'
scaling), the targets' range and first rows. The summary is small and plain (numpy, no
tensors), so that every process can send it to every other. The rows themselves wait in
spill files for later passes (`toolkit.training.rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.defaults import VAL_FRACTION
from toolkit.errors import DataError
from toolkit.io import DataSource, Piece, holdout_mask
from toolkit.training import exact
from toolkit.training.halves import THREADS
from toolkit.training.model import ModelSpec
from toolkit.training.plain_gram import one_blas_thread
from toolkit.training.spill import RowSpill

if TYPE_CHECKING:
    from toolkit.io.planned import Dropped
    from toolkit.training.config import TrainConfig
    from toolkit.training.distributed import Group
    from toolkit.training.rows import Rows

PlainMoments = dict[str, Any]  # exact.Moments.to_plain(): numpy arrays and the count


@dataclass
class PassSummary:
    """What one process learned reading its piece: small enough to send to every other."""

    n_train: int
    n_val: int
    train: PlainMoments | None
    val: PlainMoments | None
    target_min: np.ndarray | None
    target_max: np.ndarray | None
    first_target: np.ndarray | None  # the targets of the first training row: metrics' shift
    first_val_target: np.ndarray | None
    dropped: Dropped | None = None  # --missing drop: the rows dropped, and their gaps


def val_fraction(config: TrainConfig) -> float:
    """The share of rows the pass holds out: --val-fraction, or the default split."""
    return VAL_FRACTION if config.val_fraction is None else config.val_fraction


def read_pass(
    source: DataSource,
    pieces: list[Piece],
    config: TrainConfig,
    device: Any,
    fraction: float,
    train_spill: RowSpill,
    val_spill: RowSpill,
    progress: bool,
    started: Iterator[np.ndarray] | None = None,
) -> PassSummary:
    """Parse and check every row once; split, accumulate and spill it for later passes.

    `started`: the same blocks, from a reader already under way (toolkit.training.early).

    pyarrow parses on its own threads meanwhile: torch gets half the cores, so that its
    spinning workers do not slow the parsing down (on 2 cores, 2.4 s instead of 3.8 s).
    Data already in memory has nothing to parse: torch keeps every core, and the rows are
    summed on two threads. Either way numpy's BLAS runs on one thread: its idle threads
    spin, which starves the parser or the other summing thread.
    """
    import torch

    shown = config.progress and progress
    blocks = started or source.blocks(pieces, config.chunk_rows, progress=shown)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads if source.in_memory else max(1, threads // 2))
    try:
        with one_blas_thread():
            summary = consume(
                blocks,
                len(source.feature_names),
                fraction,
                config.seed,
                device,
                train_spill,
                val_spill,
                weighted=source.weight_name is not None,
                threads=THREADS if source.in_memory else 1,
            )
        summary.dropped = source.dropped if source.planned else None
        return summary
    finally:
        torch.set_num_threads(threads)
        close = getattr(blocks, "close", None)
        if close is not None:
            close()  # a failed pass stops the reading thread now


def consume(
    blocks: Iterable[np.ndarray],
    d: int,
    fraction: float,
    seed: int,
    device: Any,
    train_spill: RowSpill,
    val_spill: RowSpill,
    weighted: bool = False,
    threads: int = 1,
) -> PassSummary:
    """Split each block of [features | targets] rows by the seeded hash, sum and spill it.

    `weighted`: the blocks' last column holds the rows' weights (spilled with the rows).
    `threads`: how many threads sum the rows (toolkit.training.plain_gram).
    """
    train_stats = exact.Accumulator(device, threads)
    val_stats = exact.Accumulator(device, threads)
    low = high = first = first_val = None
    for block in blocks:
        # The split hashes the values, not the weights: a row stays on its side whatever it weighs.
        held_out = holdout_mask(block[:, :-1] if weighted else block, fraction, seed)
        train_part = block[~held_out] if held_out.any() else block
        val_part = block[held_out]
        for part, stats, spill in (
            (train_part, train_stats, train_spill),
            (val_part, val_stats, val_spill),
        ):
            if len(part):
                if weighted:
                    stats.add(part[:, :d], part[:, d:-1], part[:, -1])
                else:
                    stats.add(part[:, :d], part[:, d:])
                spill.append(part)
        targets = block[:, d:-1] if weighted else block[:, d:]
        low = targets.min(axis=0) if low is None else np.minimum(low, targets.min(axis=0))
        high = targets.max(axis=0) if high is None else np.maximum(high, targets.max(axis=0))
        if first is None and len(train_part):
            first = targets[~held_out][0].copy()
        if first_val is None and len(val_part):
            first_val = targets[held_out][0].copy()
    return PassSummary(
        train_stats.n,
        val_stats.n,
        train_stats.plain_moments(),
        val_stats.plain_moments(),
        low,
        high,
        first,
        first_val,
    )


def to_moments(plain: PlainMoments | None) -> exact.Moments | None:
    """A process's plain moments (as sent between processes) as Moments."""
    return None if plain is None else exact.Moments.from_plain(plain)


# ---------------------------------------------------------------------------------------
# What the pass says about the data


def check_enough_rows(name: str, spec: ModelSpec, n_train: int) -> None:
    """Refuse fewer training rows than parameters per target: the fit would not be unique."""
    if n_train >= spec.n_parameters:
        return
    parameters = f"{spec.n_features} weight{'s' if spec.n_features != 1 else ''}"
    if spec.intercept:
        parameters += " and an intercept"
    raise DataError(
        f"{name}: {n_train} training row{'s' if n_train != 1 else ''} cannot determine "
        f"{spec.n_parameters} parameters per target ({parameters}); expected at least "
        f"{spec.n_parameters} rows. Add rows, use fewer --features, or lower --val-fraction."
    )


def constant_target_warnings(spec: ModelSpec, parts: list[PassSummary]) -> list[str]:
    """A warning for each target that has one value in every row of every process."""
    lows = [p.target_min for p in parts if p.target_min is not None]
    highs = [p.target_max for p in parts if p.target_max is not None]
    if not lows:
        return []
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    warnings = []
    for name, a, b in zip(spec.target_names, low, high, strict=True):
        if a == b:
            warnings.append(
                f"warning: target {name!r} is constant (every value is {float(a)!r}); "
                "R^2 is undefined for it and is reported as n/a."
            )
    return warnings


def check_some_weight(name: str, weight: str | None, moments: Any) -> None:
    """Refuse weighted training rows whose weights are all zero: nothing to fit."""
    if weight is not None and moments is not None and not moments.weight_sum > 0:
        raise DataError(
            f"{name}: every training row has weight 0 in column {weight!r}; expected at "
            "least one row with a weight > 0. Check the --weight column."
        )


def check_dtype_range(
    spec: ModelSpec, moments: list[Any], rows: list[Rows | None], group: Group
) -> None:
    """Refuse data that a model of `spec.dtype` cannot take in or give back (float32: 3.4e38).

    The moments bound each column's magnitude from above; only when that bound is past
    the dtype's range are the rows read again for the exact largest value.
    """
    if spec.dtype == "float64":
        return
    largest = float(np.finfo(spec.dtype).max)
    bounds = [part.peak for part in moments if part is not None]
    if not bounds or (np.max(bounds, axis=0) <= largest).all():
        return
    local = np.zeros(len(bounds[0]))
    for part in rows:
        for block in part.blocks() if part is not None else ():
            cells = np.abs(block[:, : len(local)])  # not the weight column
            local = np.maximum(local, cells.max(axis=0, initial=0.0))
    extreme = np.max(group.gather(local), axis=0)
    beyond = np.flatnonzero(extreme > largest)
    if len(beyond):
        j = int(beyond[0])
        names = list(spec.feature_names) + list(spec.target_names)
        raise DataError(
            f"column {names[j]!r} holds {float(extreme[j]):.6g}, beyond the range of a "
            f"{spec.dtype} model (about {largest:.3g}); train with --dtype float64."
        )
