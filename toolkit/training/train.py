"""`toolkit train`: one training job end to end, as named steps.

    1. open the data; every process agrees on its columns        (`_train`)
    2. one pass: parse, check, split, sum and spill every row    `_read`
    3. choose the split (the default one is skipped on tiny data) `_choose_split`
    4. solve: closed form, or epochs of an iterative solver      `_solve`
    5. evaluate the weights as saved: metrics, optimality gap    `_evaluate`
       and the statistical inference (no further pass)            `inference.of_run`
    6. rank 0 writes the checkpoint                              `_write`

Solvers: exact (`toolkit.training.exact`, closed-form least squares, the default), and
sgd, adam and lbfgs (`toolkit.training.iterative`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.defaults import VAL_FRACTION
from toolkit.errors import DataError, TrainingError, TrainingInterrupted
from toolkit.io import DataSource
from toolkit.training import checkpoint, exact, inference, resume, tables
from toolkit.training.config import TrainConfig
from toolkit.training.early import EarlyPass, EarlyRead, join
from toolkit.training.early import start as start_reading
from toolkit.training.iterative import EpochCallback, IterativeRun
from toolkit.training.metrics import MetricSums, summarize
from toolkit.training.model import ModelSpec, round_to_dtype
from toolkit.training.readpass import (
    PassSummary,
    check_dtype_range,
    check_enough_rows,
    check_some_weight,
    constant_target_warnings,
    read_pass,
    to_moments,
    val_fraction,
)
from toolkit.training.report import (
    TrainResult,
    checkpoint_payload,
    data_info,
    far_from_optimum,
    optimality_gap,
    rounding_cost,
)
from toolkit.training.rows import (
    Rows,
    Split,
    combine_r,
    combine_sums,
    group_metric_sums,
    group_metric_sums_of,
    parity_sample,
)
from toolkit.training.spill import RowSpill, spill_for

if TYPE_CHECKING:
    from toolkit.training.distributed import Group

__all__ = ["EpochCallback", "TrainConfig", "TrainResult", "train"]

# The default split is skipped unless it leaves this many validation rows (fewer give
# too noisy a signal for early stopping) and two training rows per parameter.
MIN_DEFAULT_VAL_ROWS = 10


def train(config: TrainConfig, on_epoch_end: EpochCallback | None = None) -> TrainResult:
    """Run one training job end to end and write its checkpoint atomically.

    Under torchrun every process calls this: each reads its piece of the data, they
    combine their statistics or gradients, and rank 0 writes the checkpoint (every
    process returns the same result). `on_epoch_end(epoch, losses)` is called after each
    completed epoch of an iterative solver (1-based epoch); raising KeyboardInterrupt
    from it interrupts the run there.
    """
    hyper = config.hyperparameters()
    # The seconds are the whole job's, torch's import included: the pass may run meanwhile.
    started = time.perf_counter()
    early = start_reading(config)  # before torch: the pass overlaps its import
    group = None
    try:
        group, device = join(config, early)
        result = _train(config, hyper, group, device, on_epoch_end, early)
    except KeyboardInterrupt:
        if group is None:  # during torch's import: nothing started
            raise
        # The epochs of an iterative run save their state and say so themselves; this is
        # an interruption anywhere else (reading, solving): nothing to continue from.
        raise group.printed_by_rank_0(
            TrainingInterrupted("interrupted before training finished; nothing was saved.")
        ) from None
    finally:
        early.close()
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class _Job:
    """What every step of one run shares."""

    config: TrainConfig
    hyper: dict[str, Any]
    spec: ModelSpec
    device: Any
    group: Group
    notes: list[str]  # shown after the run ("warning: ..." ones even with --quiet)
    fit: exact.ExactFit | None = None  # the exact solve, whose factor the inference reuses
    table: tables.Prepared | None = None  # the raw table's plan (None: a numeric table)


def _train(
    config: TrainConfig,
    hyper: dict[str, Any],
    group: Group,
    device: Any,
    on_epoch_end: EpochCallback | None,
    early: EarlyRead,
) -> TrainResult:
    source = early.opened(config, group)
    inference.prefetch()  # scipy's import overlaps the data pass
    stored = resume.stored_table(config, group)
    source, prepared = tables.prepare(config, source, group, stored, early.plain)
    spec = ModelSpec(
        tuple(source.feature_names), tuple(source.target_names), config.intercept, config.dtype
    )
    job = _Job(config, hyper, spec, device, group, [*source.notes, *prepared.notes])
    job.table = prepared
    try:
        return _fit(job, source, on_epoch_end, early)
    except DataError as error:  # a text column that looks numeric may be the cause: say so
        hinted = tables.with_warnings(error, prepared)
        if hinted is error:
            raise
        raise hinted from error


def _fit(
    job: _Job, source: DataSource, on_epoch_end: EpochCallback | None, early: EarlyRead
) -> TrainResult:
    """Steps 2 to 6 on the opened (and planned) data."""
    config, group, spec, prepared = job.config, job.group, job.spec, job.table
    assert prepared is not None
    passing = early.take_pass(source)  # the pass under way since before torch, if any
    width = len(source.columns)
    with (
        passing.train_spill if passing else spill_for(source, width) as train_spill,
        passing.val_spill if passing else spill_for(source, width) as val_spill,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        if passing is not None:
            local, digest = _take_pass(job, passing)
        else:
            local, digest = _read(job, source, train_spill, val_spill, pool, early.take_blocks())
        dropped = tables.dropped_rows([part.dropped for part in local])
        if dropped is not None:
            job.notes.append(dropped.note())
        split = _choose_split(job, source.name, local, train_spill, val_spill)
        job.notes.extend(constant_target_warnings(spec, local))
        sample = parity_sample(group, [train_spill, val_spill])
        sha256 = ""
        if group.is_main:
            sha256 = digest.result() if digest is not None else source.sha256()
        *solved, details = _solve(job, split, sha256, on_epoch_end)
        weight, bias = as_saved(spec, *solved)
        metrics, gap, sums = _evaluate(job, split, weight, bias, solved)
        job.notes.extend(far_from_optimum(gap, job.notes))
        stats = inference.of_run(config, spec, split.moments, solved, sums, gap, job.fit)

    result = TrainResult(
        spec=spec,
        weight=weight,
        bias=bias,
        solver=config.solver,
        device=str(job.device),
        checkpoint=Path(config.out),
        hyperparameters=job.hyper,
        metrics=metrics,
        details=details,
        data=data_info(source.name, sha256, split, group.world, dropped),
        optimality_gap=gap,
        notes=job.notes,
        moments=split.moments,
        rank=group.rank,
        inference=stats,
        table=prepared.table,
    )
    _write(job, result, sample)
    return result


def _take_pass(job: _Job, passing: EarlyPass) -> tuple[list[PassSummary], Future[str] | None]:
    """Step 2 when the pass began before torch was imported (toolkit.training.early)."""
    try:
        return [job.group.agree(passing.summary.result)], passing.digest
    except BaseException:
        passing.stop()
        raise


def _read(
    job: _Job,
    source: DataSource,
    train_spill: RowSpill,
    val_spill: RowSpill,
    pool: ThreadPoolExecutor,
    started: Iterator[np.ndarray] | None = None,
) -> tuple[list[PassSummary], Future[str] | None]:
    """Step 2: each process reads its piece once; every process's summary, in rank order.

    Whole CSV files are hashed as they are parsed; otherwise rank 0 hashes the files in a
    thread while every rank parses its piece (hashlib drops the GIL): the returned future.
    """
    config, group = job.config, job.group
    fraction = val_fraction(config)
    pieces = source.pieces(group.rank, group.world)
    hashed_on_the_way = source.hashed_while_read(pieces)
    stop_hashing = threading.Event()  # a failed pass need not wait for the hash
    digest = None
    if group.is_main and not hashed_on_the_way:
        digest = pool.submit(source.sha256, stop_hashing)
    try:
        mine = group.agree(
            lambda: read_pass(
                source,
                pieces,
                config,
                job.device,
                fraction,
                train_spill,
                val_spill,
                group.is_main,
                started,
            )
        )
        return group.gather(mine), digest
    except BaseException:
        stop_hashing.set()
        raise


def _choose_split(
    job: _Job, name: str, local: list[PassSummary], train_spill: RowSpill, val_spill: RowSpill
) -> Split:
    """Step 3: the rows to train and report on, over every process.

    The default split is dropped when the data cannot spare it: then every row trains.
    """
    spec, chunk_rows = job.spec, job.config.chunk_rows
    fraction = val_fraction(job.config)
    weighted = job.config.weight is not None
    train_rows = Rows([train_spill], chunk_rows, spec.n_features, weighted)
    val_rows = Rows([val_spill], chunk_rows, spec.n_features, weighted)
    train_moments = exact.merge(to_moments(part.train) for part in local)
    val_moments = exact.merge(to_moments(part.val) for part in local)
    n_train, n_val = sum(p.n_train for p in local), sum(p.n_val for p in local)
    n_rows = n_train + n_val
    if job.config.val_fraction is None and (
        n_val < MIN_DEFAULT_VAL_ROWS or n_train < 2 * spec.n_parameters
    ):
        job.notes.append(_no_split_note(n_rows, spec))
        fraction, n_train, n_val = 0.0, n_rows, 0
        train_moments = exact.merge([train_moments, val_moments])
        train_rows = Rows([train_spill, val_spill], chunk_rows, spec.n_features, weighted)
    check_enough_rows(name, spec, n_train)
    check_some_weight(name, job.config.weight, train_moments)
    check_dtype_range(spec, [train_moments, val_moments], [train_rows, val_rows], job.group)
    assert train_moments is not None  # at least n_parameters rows, checked above
    # Any training row's targets will do as the metrics' shift (every process picks the same);
    # when the default split was dropped, the training rows include the held-out ones.
    firsts = [p.first_target for p in local] + [p.first_val_target for p in local]
    train_shift = next(first for first in firsts if first is not None)
    val_shift = None
    if n_val:
        val_shift = next(p.first_val_target for p in local if p.first_val_target is not None)
    return Split(
        fraction,
        train_rows,
        val_rows if n_val else None,
        n_train,
        n_val,
        train_moments,
        train_shift,
        val_shift,
        val_moments.weight_sum if n_val and val_moments is not None else 0.0,
    )


def _no_split_note(n_rows: int, spec: ModelSpec) -> str:
    return (
        f"{n_rows} rows are too few to spare a validation split (holding out "
        f"{VAL_FRACTION:.0%} needs at least {MIN_DEFAULT_VAL_ROWS} validation "
        f"rows and {2 * spec.n_parameters} training rows for {spec.n_parameters} parameters "
        "per target); training and reporting on all rows. Force one with --val-fraction."
    )


def _solve(
    job: _Job, split: Split, sha256: str, on_epoch_end: EpochCallback | None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Step 4: the weights in raw feature units (float64), and how they were found."""
    config, spec, group = job.config, job.spec, job.group
    if config.solver != "exact":
        fingerprint = resume.fingerprint(
            config, job.hyper, spec, sha256, job.device, split.fraction, group.world, job.table
        )
        run = IterativeRun(config, job.hyper, spec, split, job.device, group)
        weight, bias, details = run.fit(fingerprint, on_epoch_end)
        return weight, bias, {**details, "history": run.history}  # the checkpoint's own key
    fit = exact.solve(
        split.moments,
        spec.n_features,
        spec.feature_names,
        spec.intercept,
        config.l2,
        split.train.pairs,
        combine_r(group),
        combine_sums(group),
    )
    job.fit = fit
    if fit.method == "qr":
        job.notes.append(
            "the scaled Gram matrix is ill-conditioned (condition number "
            f"{fit.condition_number:.3g}); solved by QR of the data instead of the "
            "normal equations to keep the digits."
        )
    details = {
        "method": fit.method,
        "condition_number": fit.condition_number,
        "refinement_passes": fit.refinement_passes,
    }
    return fit.weight, fit.bias, details


def as_saved(spec: ModelSpec, weight: np.ndarray, bias: np.ndarray) -> tuple[Any, Any]:
    """The weights rounded to the model's dtype, as the checkpoint holds them; never inf."""
    saved_weight, saved_bias = round_to_dtype(weight, spec.dtype), round_to_dtype(bias, spec.dtype)
    if np.isfinite(saved_weight).all() and np.isfinite(saved_bias).all():
        return saved_weight, saved_bias
    largest = float(np.nanmax(np.abs(np.concatenate([weight.ravel(), bias.ravel()]))))
    remedy = "train with --dtype float64" if spec.dtype == "float32" else "rescale the data"
    raise TrainingError(
        f"the fitted weights do not fit in a {spec.dtype} model (largest magnitude "
        f"{largest:.3g}, beyond {float(np.finfo(spec.dtype).max):.3g}); {remedy}. "
        "Nothing was saved."
    )


def _evaluate(
    job: _Job, split: Split, weight: np.ndarray, bias: np.ndarray, solved: tuple[Any, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None, MetricSums]:
    """Step 5: metrics of the weights as saved, predicted in the model's dtype as the
    exported model predicts; the gap to the exact fit; the cost of float32 rounding (the
    float64 solution's metrics come from the same read of the training rows). Also the
    float64 solution's sums on the training rows, which the inference takes its SSR from."""
    group, spec, unit = job.group, job.spec, split.target_unit
    models = [(weight, bias, spec.dtype)]
    if spec.dtype != "float64":
        models.append((*solved, "float64"))
    train_sums = group_metric_sums_of(group, split.train, models, split.train_shift, unit)
    saved, *wide = (summarize(sums, spec.target_names) for sums in train_sums)
    metrics = {"train": saved, "val": None}
    if split.val is not None:
        assert split.val_shift is not None  # set whenever there are validation rows
        val_sums = group_metric_sums(
            group, split.val, weight, bias, split.val_shift, spec.dtype, unit
        )
        metrics["val"] = summarize(val_sums, spec.target_names)
    if wide:
        job.notes.extend(rounding_cost(spec, saved, wide[0]))
    gap = None
    if job.config.solver != "exact":
        gap = optimality_gap(group, split, spec, job.config.l2, metrics, job.notes)
    return metrics, gap, train_sums[-1]


def _write(job: _Job, result: TrainResult, sample: np.ndarray) -> None:
    """Step 6: rank 0 writes the checkpoint; a finished run's resume state is deleted."""
    if not job.group.is_main:
        return
    checkpoint.save(job.config.out, checkpoint_payload(result, job.config.seed, sample))
    if job.config.solver != "exact":
        resume.discard(job.config.out)
