"""`toolkit train`: fit the linear regressor, report how good it is, save the checkpoint.

Solvers:
    exact   closed-form least squares (toolkit/exact.py), the default.
    sgd     torch.optim.SGD + MSELoss, the tutorial's method, done right.
    adam    torch.optim.Adam + MSELoss.
    lbfgs   torch.optim.LBFGS with a strong-Wolfe line search, full batch.

The iterative solvers train on standardized features and targets (so one learning
rate suits data of any scale) and fold the scaling back into the final weights, so the
saved model takes raw features. sgd and adam cut the learning rate 10x whenever the
training loss plateaus. Every iterative run stops early once the validation loss (the
training loss when there is no split) has not improved for --patience epochs, and keeps
the last weights: for a convex loss they are the converged ones, while "the best epoch
by validation loss" tends to be a lucky noisy iterate far from the optimum.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.defaults import CHUNK_ROWS as DEFAULT_CHUNK_ROWS
from toolkit.errors import (
    CheckpointError,
    CollinearityError,
    DataError,
    TrainingError,
    TrainingInterrupted,
    UsageError,
)
from toolkit.io import DataSource, Piece, holdout_mask, open_source
from toolkit.training import checkpoint, exact
from toolkit.training.metrics import MetricSums, metric_sums, summarize
from toolkit.training.model import DTYPES, ModelSpec, build_model, round_to_dtype
from toolkit.training.spill import RowSpill

if TYPE_CHECKING:
    from toolkit.training.distributed import Group

SOLVERS = ("exact", "sgd", "adam", "lbfgs")
ITERATIVE = ("sgd", "adam", "lbfgs")
# Tuned so that each solver with its defaults reaches the exact solution's R^2 within
# 1e-4 on the seed data and on features spanning 1 to 100 in scale (tests/test_train.py).
SOLVER_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.1, "epochs": 300, "batch_size": 256, "patience": 20},
    "adam": {"lr": 0.01, "epochs": 300, "batch_size": 256, "patience": 20},
    "lbfgs": {"lr": 1.0, "epochs": 50, "batch_size": 0, "patience": 5},
}
# sgd and adam: the learning rate drops by LR_DECAY_FACTOR when the training loss has not
# improved by LR_DECAY_THRESHOLD (relative) for LR_DECAY_PATIENCE epochs, down to
# MIN_LR_FRACTION of --lr. Measured on 50,000 x 20 rows with scales 1 to 100: the final
# MSE is within 1e-5 of the exact solution's, where a cosine schedule with val-based
# early stopping left up to 10%.
LR_DECAY_FACTOR = 0.1
LR_DECAY_PATIENCE = 3
LR_DECAY_THRESHOLD = 1e-4
MIN_LR_FRACTION = 1e-6
DEFAULT_VAL_FRACTION = 0.2
# The default split is skipped unless it leaves this many validation rows (fewer give
# too noisy a signal for early stopping) and two training rows per parameter.
MIN_DEFAULT_VAL_ROWS = 10
# An improvement smaller than this fraction of the best loss does not reset patience.
MIN_RELATIVE_IMPROVEMENT = 1e-7
# Rows of training features kept in the checkpoint for the export's parity gate.
PARITY_SAMPLE_ROWS = 256
# How often an iterative run writes its resume state, besides on interruption.
SAVE_EVERY_SECONDS = 30.0


@dataclass
class TrainConfig:
    """Every choice of a training run; None means "the solver's default"."""

    data: str | Path | None = None  # a file, a folder of shards or a glob
    targets: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    val_fraction: float | None = None
    solver: str = "exact"
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    patience: int | None = None
    l2: float = 0.0
    intercept: bool = True
    dtype: str = "float32"
    device: str = "auto"
    seed: int = 0
    out: Path = checkpoint.DEFAULT_CHECKPOINT
    resume: bool = False
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    progress: bool = False

    def hyperparameters(self) -> dict[str, Any]:
        """The solver's settings after defaults are filled in (validated)."""
        if self.solver not in SOLVERS:
            raise UsageError(f"solver {self.solver!r} is not one of {', '.join(SOLVERS)}.")
        if self.dtype not in DTYPES:
            raise UsageError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}.")
        if self.l2 < 0 or not math.isfinite(self.l2):
            raise UsageError(f"--l2 must be a finite number >= 0, got {self.l2!r}.")
        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:
            raise UsageError(f"--val-fraction must be in [0, 1), got {self.val_fraction!r}.")
        given = {
            "lr": self.lr,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "patience": self.patience,
        }
        if self.solver == "exact":
            extra = [name for name, value in given.items() if value is not None]
            if extra:
                flag = "--" + extra[0].replace("_", "-")
                raise UsageError(
                    f"{flag} applies to the iterative solvers ({', '.join(ITERATIVE)}), not to "
                    "--solver exact, which solves in closed form."
                )
            if self.resume:
                raise UsageError("--resume continues an iterative run; --solver exact has none.")
            return {"l2": self.l2}
        settings = dict(SOLVER_DEFAULTS[self.solver])
        settings.update({name: value for name, value in given.items() if value is not None})
        if settings["lr"] <= 0 or not math.isfinite(settings["lr"]):
            raise UsageError(f"--lr must be a finite number > 0, got {settings['lr']!r}.")
        if settings["epochs"] < 1:
            raise UsageError(f"--epochs must be at least 1, got {settings['epochs']!r}.")
        if settings["batch_size"] < 0:
            raise UsageError(
                f"--batch-size must be >= 0 (0 = full batch), got {settings['batch_size']!r}."
            )
        if settings["patience"] < 0:
            raise UsageError(
                f"--patience must be >= 0 (0 = never stop early), got {settings['patience']!r}."
            )
        if self.solver == "lbfgs" and settings["batch_size"] != 0:
            raise UsageError(
                "--solver lbfgs uses the full batch (its line search needs it); drop --batch-size."
            )
        settings["l2"] = self.l2
        return settings


@dataclass
class TrainResult:
    """What a run produced; `toolkit.training.summary` turns it into text or JSON."""

    spec: ModelSpec
    weight: np.ndarray  # (t, d) float64, exactly as saved in the model's dtype
    bias: np.ndarray  # (t,) float64; zeros without an intercept
    solver: str
    device: str
    checkpoint: Path
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    details: dict[str, Any]
    data: dict[str, Any]
    optimality_gap: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rank: int = 0  # this process's rank under torchrun; only rank 0 prints and writes


EpochCallback = Callable[[int, dict[str, float]], None]


def train(config: TrainConfig, on_epoch_end: EpochCallback | None = None) -> TrainResult:
    """Run one training job end to end and write its checkpoint atomically.

    Under torchrun every process calls this: each reads its piece of the data, they
    combine their statistics or gradients, and rank 0 writes the checkpoint (every
    process returns the same result). `on_epoch_end(epoch, losses)` is called after each
    completed epoch of an iterative solver (1-based epoch); raising KeyboardInterrupt
    from it interrupts the run there.
    """
    import torch  # noqa: F401 (imported before the clock starts: seconds are the work's)

    from toolkit.training import distributed
    from toolkit.training.device import resolve_device

    started = time.perf_counter()
    hyper = config.hyperparameters()
    # A missing device fails here, before any data is read.
    group, device = distributed.join(resolve_device(config.device))
    result = _train(config, hyper, group, device, on_epoch_end)
    result.seconds = time.perf_counter() - started
    return result


def _train(
    config: TrainConfig,
    hyper: dict[str, Any],
    group: Group,
    device: Any,
    on_epoch_end: EpochCallback | None,
) -> TrainResult:
    source = group.agree(lambda: open_source(config.data, config.targets, config.features))
    spec = ModelSpec(
        tuple(source.feature_names), tuple(source.target_names), config.intercept, config.dtype
    )
    notes = list(source.notes)
    fraction = DEFAULT_VAL_FRACTION if config.val_fraction is None else config.val_fraction
    width = len(source.columns)
    with (
        RowSpill(width) as train_spill,
        RowSpill(width) as val_spill,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        pieces = source.pieces(group.rank, group.world)
        # Whole CSV files are hashed as they are parsed; otherwise rank 0 hashes the files
        # in a thread while every rank parses its piece (hashlib drops the GIL).
        hashed_on_the_way = source.hashed_while_read(pieces)
        stop_hashing = threading.Event()  # a failed pass need not wait for the hash
        digest = None
        if group.is_main and not hashed_on_the_way:
            digest = pool.submit(source.sha256, stop_hashing)
        try:
            mine = group.agree(
                lambda: _read_pass(
                    source, pieces, config, device, fraction, train_spill, val_spill, group.is_main
                )
            )
            local = group.gather(mine)
        except BaseException:
            stop_hashing.set()
            raise
        train_rows = _Rows([train_spill], config.chunk_rows, spec.n_features)
        val_rows = _Rows([val_spill], config.chunk_rows, spec.n_features)
        train_moments = exact.merge(_moments(part.train, device) for part in local)
        val_moments = exact.merge(_moments(part.val, device) for part in local)
        n_train, n_val = sum(p.n_train for p in local), sum(p.n_val for p in local)
        n_rows = n_train + n_val
        if config.val_fraction is None and (
            n_val < MIN_DEFAULT_VAL_ROWS or n_train < 2 * spec.n_parameters
        ):
            needed = 2 * spec.n_parameters
            notes.append(
                f"{n_rows} rows are too few to spare a validation split (holding out "
                f"{DEFAULT_VAL_FRACTION:.0%} needs at least {MIN_DEFAULT_VAL_ROWS} validation "
                f"rows and {needed} training rows for {spec.n_parameters} parameters per "
                "target); training and reporting on all rows. Force one with --val-fraction."
            )
            fraction, n_train, n_val = 0.0, n_rows, 0
            train_moments = exact.merge([train_moments, val_moments])
            train_rows = _Rows([train_spill, val_spill], config.chunk_rows, spec.n_features)
        _check_enough_rows(source.name, spec, n_train)
        notes.extend(_constant_target_warnings(spec, local))
        assert train_moments is not None  # at least n_parameters rows, checked above
        train_shift = next(p.first_target for p in local if p.first_target is not None)
        sample = _parity_sample(group, [train_spill, val_spill])
        sha256 = ""
        if group.is_main:
            sha256 = digest.result() if digest is not None else source.sha256()

        combine_r = _combine_r(group)
        details: dict[str, Any]
        gap = None
        if config.solver == "exact":
            fit = exact.solve(
                train_moments,
                spec.n_features,
                spec.feature_names,
                spec.intercept,
                config.l2,
                train_rows.pairs,
                combine_r,
            )
            weight, bias = fit.weight, fit.bias
            details = {"method": fit.method, "condition_number": fit.condition_number}
            if fit.method == "qr":
                notes.append(
                    "the scaled Gram matrix is ill-conditioned (condition number "
                    f"{fit.condition_number:.3g}); solved by QR of the data instead of the "
                    "normal equations to keep the digits."
                )
        else:
            fingerprint = _fingerprint(config, hyper, spec, sha256, device, fraction, group.world)
            weight, bias, details = _fit_iterative(
                config,
                hyper,
                spec,
                _Standardizer(train_moments, spec),
                n_train,
                train_rows,
                val_rows if n_val else None,
                n_val,
                device,
                fingerprint,
                on_epoch_end,
                group,
            )

        weight = round_to_dtype(weight, spec.dtype)
        bias = round_to_dtype(bias, spec.dtype)
        train_sums = _metric_sums(group, train_rows, weight, bias, train_shift)
        metrics = {"train": summarize(train_sums, spec.target_names), "val": None}
        if n_val:
            val_shift = next(p.first_val_target for p in local if p.first_val_target is not None)
            val_sums = _metric_sums(group, val_rows, weight, bias, val_shift)
            metrics["val"] = summarize(val_sums, spec.target_names)
        if config.solver != "exact":
            gap = _optimality_gap(
                group, train_moments, train_rows, train_shift, spec, config.l2, metrics, notes
            )

    data_info = {
        "source": source.name,
        "sha256": sha256,
        "rows": n_rows,
        "train_rows": n_train,
        "val_rows": n_val,
        "val_fraction": fraction,
        "processes": group.world,
    }
    result = TrainResult(
        spec=spec,
        weight=weight,
        bias=bias,
        solver=config.solver,
        device=str(device),
        checkpoint=Path(config.out),
        hyperparameters=hyper,
        metrics=metrics,
        details=details,
        data=data_info,
        optimality_gap=gap,
        notes=notes,
        rank=group.rank,
    )
    if group.is_main:
        checkpoint.save(config.out, _checkpoint_payload(result, config, sample))
        state = checkpoint.resume_path(config.out)
        if config.solver != "exact" and state.exists():
            state.unlink()
    return result


# ---------------------------------------------------------------------------------------
# The one pass over the data


@dataclass
class _PassSummary:
    """What one process learned reading its piece: small enough to send to every other."""

    n_train: int
    n_val: int
    train: tuple[int, np.ndarray, np.ndarray] | None  # moments as (n, mean, scatter)
    val: tuple[int, np.ndarray, np.ndarray] | None
    target_min: np.ndarray | None
    target_max: np.ndarray | None
    first_target: np.ndarray | None  # the targets of the first training row: metrics' shift
    first_val_target: np.ndarray | None


def _read_pass(
    source: DataSource,
    pieces: list[Piece],
    config: TrainConfig,
    device: Any,
    fraction: float,
    train_spill: RowSpill,
    val_spill: RowSpill,
    progress: bool,
) -> _PassSummary:
    """Parse and check every row once; split, accumulate and spill it for later passes.

    pyarrow parses on its own threads meanwhile: torch gets half the cores, so that its
    spinning workers do not slow the parsing down (on 2 cores, 2.4 s instead of 3.8 s).
    """
    import torch

    blocks = source.blocks(pieces, config.chunk_rows, progress=config.progress and progress)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))
    try:
        return _consume(
            blocks, len(source.feature_names), fraction, config.seed, device, train_spill, val_spill
        )
    finally:
        torch.set_num_threads(threads)


def _consume(
    blocks: Iterable[np.ndarray],
    d: int,
    fraction: float,
    seed: int,
    device: Any,
    train_spill: RowSpill,
    val_spill: RowSpill,
) -> _PassSummary:
    train_stats, val_stats = exact.Accumulator(device), exact.Accumulator(device)
    low = high = first = first_val = None
    for block in blocks:
        held_out = holdout_mask(block, fraction, seed)
        train_part = block[~held_out] if held_out.any() else block
        val_part = block[held_out]
        for part, stats, spill in (
            (train_part, train_stats, train_spill),
            (val_part, val_stats, val_spill),
        ):
            if len(part):
                stats.add(part[:, :d], part[:, d:])
                spill.append(part)
        targets = block[:, d:]
        low = targets.min(axis=0) if low is None else np.minimum(low, targets.min(axis=0))
        high = targets.max(axis=0) if high is None else np.maximum(high, targets.max(axis=0))
        if first is None and len(train_part):
            first = train_part[0, d:].copy()
        if first_val is None and len(val_part):
            first_val = val_part[0, d:].copy()
    return _PassSummary(
        train_stats.n,
        val_stats.n,
        _plain_moments(train_stats.moments()),
        _plain_moments(val_stats.moments()),
        low,
        high,
        first,
        first_val,
    )


def _plain_moments(moments: exact.Moments | None) -> tuple[int, np.ndarray, np.ndarray] | None:
    if moments is None:
        return None
    return moments.n, moments.mean.cpu().numpy(), moments.scatter.cpu().numpy()


def _moments(plain: tuple[int, np.ndarray, np.ndarray] | None, device: Any) -> exact.Moments | None:
    import torch

    if plain is None:
        return None
    n, mean, scatter = plain
    return exact.Moments(
        n, torch.as_tensor(mean, device=device), torch.as_tensor(scatter, device=device)
    )


@dataclass
class _Rows:
    """One process's rows of a split, in spill files: read back chunk by chunk."""

    spills: list[RowSpill]
    chunk_rows: int
    n_features: int

    @property
    def n_rows(self) -> int:
        return sum(spill.n_rows for spill in self.spills)

    def chunk_ids(self) -> list[tuple[int, int]]:
        return [
            (s, k)
            for s, spill in enumerate(self.spills)
            for k in range(spill.n_chunks(self.chunk_rows))
        ]

    def blocks(self, ids: Iterable[tuple[int, int]] | None = None) -> Iterator[np.ndarray]:
        for s, k in self.chunk_ids() if ids is None else ids:
            yield self.spills[s].chunk(k, self.chunk_rows)

    def pairs(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(features, targets) chunks in spill order."""
        for block in self.blocks():
            yield block[:, : self.n_features], block[:, self.n_features :]


def _metric_sums(
    group: Group, rows: _Rows, weight: np.ndarray, bias: np.ndarray, shift: np.ndarray
) -> MetricSums:
    """The metric sums over every process's rows (added in rank order)."""
    parts = group.gather(metric_sums(rows.pairs(), weight, bias, shift))
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _combine_r(group: Group) -> Callable[[Any], Any] | None:
    """For the QR fallback: R of the stacked per-process R factors is R of all the rows."""
    if group.world == 1:
        return None

    def combine(r: Any) -> Any:
        import torch

        stacked = np.concatenate(group.gather(r.cpu().numpy()))
        return torch.linalg.qr(torch.as_tensor(stacked, device=r.device), mode="r").R

    return combine


def _parity_sample(group: Group, spills: list[RowSpill]) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------
# Data checks


def _check_enough_rows(name: str, spec: ModelSpec, n_train: int) -> None:
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


def _constant_target_warnings(spec: ModelSpec, parts: list[_PassSummary]) -> list[str]:
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


# ---------------------------------------------------------------------------------------
# Iterative solvers


def _fit_iterative(
    config: TrainConfig,
    hyper: dict[str, Any],
    spec: ModelSpec,
    scaling: _Standardizer,
    n_train: int,
    train_rows: _Rows,
    val_rows: _Rows | None,
    n_val: int,
    device: Any,
    fingerprint: dict[str, Any],
    on_epoch_end: EpochCallback | None,
    group: Group,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Epochs over the spilled rows: chunks in a seeded order, rows shuffled in each chunk.

    Under torchrun the model is wrapped in DistributedDataParallel; each process steps on
    batches of its own rows (--batch-size / processes of them), and every loss that
    decides something (learning rate, early stopping, divergence) is summed over all
    processes first, so they all decide alike.
    """
    import torch

    dtype = getattr(torch, spec.dtype)
    t = spec.n_targets
    full_batch = hyper["batch_size"] == 0 or hyper["batch_size"] >= n_train
    batch = max(1, -(-hyper["batch_size"] // group.world)) if not full_batch else 0
    # The ridge objective ||y - Xw - b||^2 + l2 ||w||^2, divided by n * t * sy^2 to be in
    # the units of MSELoss on standardized data, penalises l2 * sum((w_std / sx)^2) / (n * t).
    penalty_scale = torch.as_tensor(1.0 / scaling.x_scale, dtype=dtype, device=device)

    model = build_model(spec, device="cpu")
    generator = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():  # nn.Linear's own init, but drawn from the seeded generator
        bound = 1.0 / math.sqrt(spec.n_features)
        model.weight.uniform_(-bound, bound, generator=generator)
        if model.bias is not None:
            model.bias.uniform_(-bound, bound, generator=generator)
    model = model.to(device)
    optimizer, scheduler = _optimizer(config.solver, model, hyper)

    state_path = checkpoint.resume_path(config.out)
    start = 0
    best_loss, best_epoch, bad_epochs = math.inf, 0, 0
    if config.resume:
        # Rank 0 reads and checks the state; every process continues from it.
        mine = group.agree(
            lambda: _load_resume_state(state_path, fingerprint) if group.is_main else None
        )
        saved = group.gather(mine)[0]
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generators"][group.rank])
        start, best_loss, best_epoch = saved["epoch"], saved["best_loss"], saved["best_epoch"]
        bad_epochs = saved["bad_epochs"]

    net: Any = model
    if group.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    def penalty() -> torch.Tensor:
        if not hyper["l2"]:
            return torch.zeros((), dtype=dtype, device=device)
        return hyper["l2"] * ((model.weight * penalty_scale) ** 2).sum() / (n_train * t)

    def tensors(block: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return scaling.tensors(block, dtype, device)

    def full_batch_step() -> torch.Tensor:
        """Gradient of the whole objective, accumulated chunk by chunk; returns its value.

        DistributedDataParallel averages gradients over processes, so each one weighs its
        sum of squares by processes / (n * t): the average is the global mean's gradient.
        """
        optimizer.zero_grad(set_to_none=True)
        ids = train_rows.chunk_ids()
        weight = group.world / (n_train * t)
        local_sse = 0.0
        if not ids:  # no rows here: still take part in the gradient average
            empty = torch.zeros(0, spec.n_features, dtype=dtype, device=device)
            (net(empty).sum() + penalty()).backward()
        for i, block in enumerate(train_rows.blocks(ids)):
            x, y = tensors(block)
            last = i == len(ids) - 1
            with contextlib.nullcontext() if last or group.world == 1 else net.no_sync():
                sse = ((net(x) - y) ** 2).sum()
                (sse * weight + (penalty() if last else 0.0)).backward()
            local_sse += float(sse.detach())
        (total,) = group.sum([local_sse])
        return torch.tensor(total / (n_train * t) + float(penalty().detach()))

    def minibatch_epoch() -> None:
        join = contextlib.nullcontext()
        if group.world > 1:
            from torch.distributed.algorithms.join import Join

            join = Join([net])
        with join:
            for xb, yb in _shuffled_batches(train_rows, tensors, batch, generator, device):
                optimizer.zero_grad(set_to_none=True)
                loss = torch.nn.functional.mse_loss(net(xb), yb) + penalty()
                loss.backward()
                optimizer.step()

    @torch.no_grad()
    def losses() -> dict[str, float]:
        """Objective on the training rows, and MSE on the validation rows (standardized)."""
        sums = [0.0, 0.0]
        for index, rows in enumerate((train_rows, val_rows)):
            for block in rows.blocks() if rows is not None else ():
                x, y = tensors(block)
                sums[index] += float(((model(x) - y) ** 2).sum())
        sse_train, sse_val = group.sum(sums)
        result = {"train": sse_train / (n_train * t) + float(penalty())}
        if val_rows is not None:
            result["val"] = sse_val / (n_val * t)
        return result

    epochs, patience = hyper["epochs"], hyper["patience"]
    snapshot: dict[str, Any] | None = None
    last_save = time.monotonic()
    stopped_early = False
    bar = _progress_bar(config, epochs, start, group.is_main)
    epoch = start
    try:
        for epoch in range(start + 1, epochs + 1):
            model.train()
            if config.solver == "lbfgs":
                optimizer.step(full_batch_step)
            elif full_batch:
                full_batch_step()
                optimizer.step()
            else:
                minibatch_epoch()

            model.eval()
            current = losses()
            bad = [k for k, v in current.items() if not math.isfinite(v)]
            finite_weights = all(bool(torch.isfinite(p).all()) for p in model.parameters())
            if bad or not finite_weights:
                which = bad[0] if bad else "train"
                # The losses are global: every process diverged alike.
                raise group.printed_by_rank_0(
                    TrainingError(
                        f"training diverged at epoch {epoch}: the {which} loss became "
                        f"{current.get(which, math.nan)}. The learning rate is too large for "
                        f"this data; try a smaller --lr (now {hyper['lr']:g}, e.g. "
                        f"--lr {hyper['lr'] / 10:g}). Nothing was saved."
                    )
                )
            monitored = current.get("val", current["train"])
            if scheduler is not None:
                scheduler.step(current["train"])
            if monitored < best_loss * (1 - MIN_RELATIVE_IMPROVEMENT):
                best_loss, best_epoch, bad_epochs = monitored, epoch, 0
            else:
                bad_epochs += 1
            snapshot = {
                "format": checkpoint.RESUME_FORMAT,
                "format_version": checkpoint.FORMAT_VERSION,
                "fingerprint": fingerprint,
                "epoch": epoch,
                "model": {k: v.detach().clone().cpu() for k, v in model.state_dict().items()},
                "optimizer": copy.deepcopy(optimizer.state_dict()),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "generators": group.gather(generator.get_state()),
                "best_loss": best_loss,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
            }
            if (
                group.is_main
                and time.monotonic() - last_save > SAVE_EVERY_SECONDS
                and epoch < epochs
            ):
                checkpoint.save(state_path, snapshot)
                last_save = time.monotonic()
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in current.items()}, refresh=False)
            if on_epoch_end is not None:
                on_epoch_end(epoch, current)
            if patience and bad_epochs >= patience:
                stopped_early = True
                break
    except KeyboardInterrupt:
        bar.close()
        if snapshot is None:
            raise group.printed_by_rank_0(
                TrainingInterrupted(
                    f"interrupted before epoch {start + 1} finished; nothing was saved."
                )
            ) from None
        if group.is_main:
            checkpoint.save(state_path, snapshot)
        raise group.printed_by_rank_0(
            TrainingInterrupted(
                f"interrupted after epoch {snapshot['epoch']} of {epochs}; the run's state is "
                f"in {state_path}. Continue it with the same command plus --resume."
            )
        ) from None
    bar.close()

    weight, bias = scaling.unscale(model)
    details = {
        "epochs_run": epoch,
        "best_epoch": best_epoch,
        "stopped_early": stopped_early,
        "resumed_from_epoch": start if config.resume else None,
        "best_loss_standardized": best_loss,
        "monitored": "val" if val_rows is not None else "train",
    }
    return weight, bias, details


def _shuffled_batches(
    rows: _Rows,
    tensors: Callable[[np.ndarray], tuple[Any, Any]],
    batch: int,
    generator: Any,
    device: Any,
) -> Iterator[tuple[Any, Any]]:
    """Mini-batches of `batch` rows: chunks in a seeded order, rows shuffled within each.

    The rows left over at the end of a chunk open the next batch, so every batch but the
    epoch's last is full whatever --chunk-rows is.
    """
    import torch

    ids = rows.chunk_ids()
    order = torch.randperm(len(ids), generator=generator).tolist()
    carry: tuple[Any, Any] | None = None
    for block in rows.blocks([ids[i] for i in order]):
        x, y = tensors(block)
        shuffle = torch.randperm(len(x), generator=generator).to(device)
        x, y = x[shuffle], y[shuffle]
        if carry is not None:
            x, y = torch.cat([carry[0], x]), torch.cat([carry[1], y])
        full = len(x) - len(x) % batch
        for begin in range(0, full, batch):
            yield x[begin : begin + batch], y[begin : begin + batch]
        carry = (x[full:], y[full:]) if full < len(x) else None
    if carry is not None:
        yield carry


class _Standardizer:
    """Feature and target scaling for the iterative solvers (from the moments), and its inverse."""

    def __init__(self, moments: exact.Moments, spec: ModelSpec) -> None:
        d = spec.n_features
        mean = moments.mean.cpu().numpy()
        variance = np.diagonal(moments.scatter.cpu().numpy()) / moments.n
        if spec.intercept:
            self.x_mean, self.y_mean = mean[:d], mean[d:]
            scale = np.sqrt(np.maximum(variance, 0.0))
        else:  # no centring: a centred model would need the intercept it does not have
            self.x_mean, self.y_mean = np.zeros(d), np.zeros(len(mean) - d)
            scale = np.sqrt(np.maximum(variance, 0.0) + mean**2)
        scale = np.where(scale > 0, scale, 1.0)
        self.x_scale, self.y_scale = scale[:d], scale[d:]
        self._shift, self._scale = np.concatenate([self.x_mean, self.y_mean]), scale
        self._d = d

    def tensors(self, block: np.ndarray, dtype: Any, device: Any) -> tuple[Any, Any]:
        import torch

        scaled = torch.as_tensor((block - self._shift) / self._scale, dtype=dtype, device=device)
        return scaled[:, : self._d], scaled[:, self._d :]

    def unscale(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        """Fold the scaling into raw-unit weights: w = w_s * sy / sx, b = my + sy * b_s - w . mx."""
        w_std = model.weight.detach().cpu().double().numpy()
        weight = w_std * self.y_scale[:, None] / self.x_scale[None, :]
        if model.bias is None:
            return weight, np.zeros(weight.shape[0])
        b_std = model.bias.detach().cpu().double().numpy()
        return weight, self.y_mean + self.y_scale * b_std - weight @ self.x_mean


def _optimizer(solver: str, model: Any, hyper: dict[str, Any]) -> tuple[Any, Any]:
    import torch

    if solver == "lbfgs":
        optimizer = torch.optim.LBFGS(
            model.parameters(),
            lr=hyper["lr"],
            max_iter=20,
            history_size=10,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-12,
            tolerance_change=1e-15,
        )
        return optimizer, None
    if solver == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=hyper["lr"])
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=hyper["lr"])
    # The step shrinks 10x whenever the training loss stops falling: a constant step
    # leaves SGD noise in the weights, and a plateau is when that noise starts to matter.
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=LR_DECAY_FACTOR,
        patience=LR_DECAY_PATIENCE,
        threshold=LR_DECAY_THRESHOLD,
        min_lr=hyper["lr"] * MIN_LR_FRACTION,
    )
    return optimizer, scheduler


def _progress_bar(config: TrainConfig, epochs: int, start: int, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=epochs,
        initial=start,
        desc=config.solver,
        unit="epoch",
        file=sys.stderr,
        disable=not (config.progress and show),
        leave=False,
        dynamic_ncols=True,
    )


def _fingerprint(
    config: TrainConfig,
    hyper: dict[str, Any],
    spec: ModelSpec,
    data_sha256: str,
    device: Any,
    val_fraction: float,
    processes: int,
) -> dict[str, Any]:
    """What must match for `--resume` to continue the same run bit for bit."""
    return {
        "solver": config.solver,
        **{key: hyper[key] for key in sorted(hyper)},
        "seed": config.seed,
        "dtype": spec.dtype,
        "intercept": spec.intercept,
        "features": list(spec.feature_names),
        "targets": list(spec.target_names),
        "data_sha256": data_sha256,
        "val_fraction": val_fraction,
        "chunk_rows": config.chunk_rows,
        "device": str(device),
        "processes": processes,
    }


def _load_resume_state(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    if not path.exists():
        raise CheckpointError(
            f"--resume found no saved state at {str(path)!r}: there is no interrupted run to "
            "continue (the state is deleted when a run finishes). Drop --resume to start anew."
        )
    saved = checkpoint.load(path, expected_format=checkpoint.RESUME_FORMAT)
    differences = [
        f"{key} {saved['fingerprint'].get(key)!r} (saved) vs {value!r} (now)"
        for key, value in fingerprint.items()
        if saved["fingerprint"].get(key) != value
    ]
    if differences:
        raise CheckpointError(
            f"cannot resume from {str(path)!r}: it was saved by a run with different settings: "
            + "; ".join(differences)
            + ". Rerun with the saved settings, or drop --resume to start anew."
        )
    return saved


# ---------------------------------------------------------------------------------------
# Reporting


def _optimality_gap(
    group: Group,
    moments: exact.Moments,
    rows: _Rows,
    shift: np.ndarray,
    spec: ModelSpec,
    l2: float,
    metrics: dict[str, Any],
    notes: list[str],
) -> dict[str, Any] | None:
    """How far an iterative solution is from the exact one on the same training rows."""
    try:
        fit = exact.solve(
            moments,
            spec.n_features,
            spec.feature_names,
            spec.intercept,
            l2,
            rows.pairs,
            _combine_r(group),
        )
    except CollinearityError as error:
        notes.append(f"no optimality gap: the exact solution is not unique ({error})")
        return None
    best = summarize(_metric_sums(group, rows, fit.weight, fit.bias, shift), spec.target_names)
    assert best is not None  # the same rows the model's own metrics came from
    model_metrics = metrics["train"]
    return {
        "r2": model_metrics["r2"],
        "r2_exact": best["r2"],
        "r2_gap": None if best["r2"] is None else best["r2"] - model_metrics["r2"],
        "mse": model_metrics["mse"],
        "mse_exact": best["mse"],
        "mse_excess": model_metrics["mse"] - best["mse"],
    }


def _checkpoint_payload(
    result: TrainResult, config: TrainConfig, sample: np.ndarray
) -> dict[str, Any]:
    import platform

    import pyarrow
    import torch

    import toolkit

    spec = result.spec
    model = build_model(spec, result.weight, result.bias)
    sample_array = np.ascontiguousarray(sample[:, : spec.n_features], dtype=np.float64)
    return {
        "format": checkpoint.FORMAT,
        "format_version": checkpoint.FORMAT_VERSION,
        "spec": spec.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training": {
            "solver": result.solver,
            "hyperparameters": dict(result.hyperparameters),
            "seed": config.seed,
            "device": result.device,
            **{k: v for k, v in result.details.items() if v is not None},
        },
        "data": dict(result.data),
        "metrics": result.metrics,
        "optimality_gap": result.optimality_gap,
        "parity_sample": torch.from_numpy(sample_array),
        "versions": {
            "toolkit": toolkit.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pyarrow": pyarrow.__version__,
            "python": platform.python_version(),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
