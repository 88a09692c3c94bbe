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

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import checkpoint, exact
from toolkit.data import DEFAULT_CHUNK_ROWS, Dataset, load_dataset, split_mask
from toolkit.errors import (
    CheckpointError,
    CollinearityError,
    DataError,
    TrainingError,
    TrainingInterrupted,
    UsageError,
)
from toolkit.metrics import regression_metrics
from toolkit.model import DTYPES, ModelSpec, build_model, round_to_dtype

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
    """What a run produced; `toolkit.summary` turns it into text or JSON."""

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


EpochCallback = Callable[[int, dict[str, float]], None]


def train(config: TrainConfig, on_epoch_end: EpochCallback | None = None) -> TrainResult:
    """Run one training job end to end and write its checkpoint atomically.

    `on_epoch_end(epoch, losses)` is called after each completed epoch of an iterative
    solver (1-based epoch); raising KeyboardInterrupt from it interrupts the run there.
    """
    from toolkit.device import resolve_device

    started = time.perf_counter()
    hyper = config.hyperparameters()
    device = resolve_device(config.device)  # fail on a missing device before reading data
    dataset = load_dataset(config.data, config.targets, config.features, config.progress)
    spec = ModelSpec(
        tuple(dataset.feature_names), tuple(dataset.target_names), config.intercept, config.dtype
    )
    notes = list(dataset.notes)
    val_fraction, val_mask = _split(dataset, spec, config, notes)
    train_mask = ~val_mask if val_mask.any() else None
    n_val = int(val_mask.sum())
    n_train = dataset.n_rows - n_val
    _check_enough_rows(dataset, spec, n_train)
    notes.extend(_constant_target_warnings(dataset))

    def train_chunks():
        return dataset.chunks(config.chunk_rows, train_mask)

    details: dict[str, Any]
    gap = None
    if config.solver == "exact":
        moments = exact.accumulate(train_chunks(), device)
        fit = exact.solve(
            moments, spec.n_features, spec.feature_names, spec.intercept, config.l2, train_chunks
        )
        weight, bias = fit.weight, fit.bias
        details = {"method": fit.method, "condition_number": fit.condition_number}
        if fit.method == "qr":
            notes.append(
                "the scaled Gram matrix is ill-conditioned (condition number "
                f"{fit.condition_number:.3g}); solved by QR of the data instead of the normal "
                "equations to keep the digits."
            )
    else:
        features, targets = dataset.arrays(train_mask)
        val_arrays = dataset.arrays(val_mask) if n_val else None
        fingerprint = _fingerprint(config, hyper, spec, dataset, device, val_fraction)
        weight, bias, details = _fit_iterative(
            config, hyper, spec, features, targets, val_arrays, device, fingerprint, on_epoch_end
        )
        del features, targets

    weight = round_to_dtype(weight, spec.dtype)
    bias = round_to_dtype(bias, spec.dtype)
    metrics = {
        "train": regression_metrics(train_chunks(), weight, bias, spec.target_names),
        "val": regression_metrics(
            dataset.chunks(config.chunk_rows, val_mask), weight, bias, spec.target_names
        )
        if n_val
        else None,
    }
    if config.solver != "exact":
        gap = _optimality_gap(train_chunks, spec, config.l2, device, metrics["train"], notes)

    data_info = {
        "source": dataset.source,
        "sha256": dataset.sha256,
        "rows": dataset.n_rows,
        "train_rows": n_train,
        "val_rows": n_val,
        "val_fraction": val_fraction,
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
    )
    checkpoint.save(config.out, _checkpoint_payload(result, config, dataset))
    state = checkpoint.resume_path(config.out)
    if config.solver != "exact" and state.exists():
        state.unlink()
    result.seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------------------------------
# Data checks


def _split(
    dataset: Dataset, spec: ModelSpec, config: TrainConfig, notes: list[str]
) -> tuple[float, np.ndarray]:
    n = dataset.n_rows
    if config.val_fraction is not None:
        return config.val_fraction, split_mask(n, config.val_fraction, config.seed)
    n_val = round(n * DEFAULT_VAL_FRACTION)
    needed = 2 * spec.n_parameters
    if n_val < MIN_DEFAULT_VAL_ROWS or n - n_val < needed:
        notes.append(
            f"{n} rows are too few to spare a validation split (holding out "
            f"{DEFAULT_VAL_FRACTION:.0%} needs at least {MIN_DEFAULT_VAL_ROWS} validation rows and "
            f"{needed} training rows for {spec.n_parameters} parameters per target); training "
            "and reporting on all rows. Force one with --val-fraction."
        )
        return 0.0, np.zeros(n, dtype=bool)
    return DEFAULT_VAL_FRACTION, split_mask(n, DEFAULT_VAL_FRACTION, config.seed)


def _check_enough_rows(dataset: Dataset, spec: ModelSpec, n_train: int) -> None:
    if n_train >= spec.n_parameters:
        return
    parameters = f"{spec.n_features} weight{'s' if spec.n_features != 1 else ''}"
    if spec.intercept:
        parameters += " and an intercept"
    raise DataError(
        f"{dataset.source}: {n_train} training row{'s' if n_train != 1 else ''} cannot determine "
        f"{spec.n_parameters} parameters per target ({parameters}); expected at least "
        f"{spec.n_parameters} rows. Add rows, use fewer --features, or lower --val-fraction."
    )


def _constant_target_warnings(dataset: Dataset) -> list[str]:
    import pyarrow.compute as pc

    warnings = []
    for name in dataset.target_names:
        bounds = pc.min_max(dataset.table.column(name)).as_py()
        if bounds["min"] == bounds["max"]:
            warnings.append(
                f"warning: target {name!r} is constant (every value is {bounds['min']!r}); "
                "R^2 is undefined for it and is reported as n/a."
            )
    return warnings


# ---------------------------------------------------------------------------------------
# Iterative solvers


def _fit_iterative(
    config: TrainConfig,
    hyper: dict[str, Any],
    spec: ModelSpec,
    features: np.ndarray,
    targets: np.ndarray,
    val_arrays: tuple[np.ndarray, np.ndarray] | None,
    device: Any,
    fingerprint: dict[str, Any],
    on_epoch_end: EpochCallback | None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    import torch

    dtype = getattr(torch, spec.dtype)
    scaling = _Standardizer(features, targets, spec.intercept)
    x, y = scaling.tensors(features, targets, dtype, device)
    val = scaling.tensors(*val_arrays, dtype, device) if val_arrays is not None else None
    n = x.shape[0]
    batch = hyper["batch_size"] if 0 < hyper["batch_size"] < n else n
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
    loss_fn = torch.nn.MSELoss()

    def objective(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(model(xb), yb)
        if hyper["l2"]:
            loss = loss + hyper["l2"] * ((model.weight * penalty_scale) ** 2).sum() / (
                n * spec.n_targets
            )
        return loss

    state_path = checkpoint.resume_path(config.out)
    start = 0
    best_loss, best_epoch, bad_epochs = math.inf, 0, 0
    if config.resume:
        saved = _load_resume_state(state_path, fingerprint)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        start, best_loss, best_epoch = saved["epoch"], saved["best_loss"], saved["best_epoch"]
        bad_epochs = saved["bad_epochs"]

    epochs, patience = hyper["epochs"], hyper["patience"]
    snapshot: dict[str, Any] | None = None
    last_save = time.monotonic()
    stopped_early = False
    bar = _progress_bar(config, epochs, start)
    epoch = start
    try:
        for epoch in range(start + 1, epochs + 1):
            model.train()
            if config.solver == "lbfgs":

                def closure() -> torch.Tensor:
                    optimizer.zero_grad(set_to_none=True)
                    loss = objective(x, y)
                    loss.backward()
                    return loss

                optimizer.step(closure)
            else:
                order = torch.randperm(n, generator=generator).to(device) if batch < n else None
                xs, ys = (x[order], y[order]) if order is not None else (x, y)
                for begin in range(0, n, batch):
                    optimizer.zero_grad(set_to_none=True)
                    objective(xs[begin : begin + batch], ys[begin : begin + batch]).backward()
                    optimizer.step()

            model.eval()
            with torch.no_grad():
                losses = {"train": float(objective(x, y))}
                if val is not None:
                    losses["val"] = float(loss_fn(model(val[0]), val[1]))
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            finite_weights = all(bool(torch.isfinite(p).all()) for p in model.parameters())
            if bad or not finite_weights:
                which = bad[0] if bad else "train"
                raise TrainingError(
                    f"training diverged at epoch {epoch}: the {which} loss became "
                    f"{losses.get(which, math.nan)}. The learning rate is too large for this "
                    f"data; try a smaller --lr (now {hyper['lr']:g}, e.g. "
                    f"--lr {hyper['lr'] / 10:g}). Nothing was saved."
                )
            monitored = losses.get("val", losses["train"])
            if scheduler is not None:
                scheduler.step(losses["train"])
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
                "generator": generator.get_state(),
                "best_loss": best_loss,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
            }
            if time.monotonic() - last_save > SAVE_EVERY_SECONDS and epoch < epochs:
                checkpoint.save(state_path, snapshot)
                last_save = time.monotonic()
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
            if on_epoch_end is not None:
                on_epoch_end(epoch, losses)
            if patience and bad_epochs >= patience:
                stopped_early = True
                break
    except KeyboardInterrupt:
        bar.close()
        if snapshot is None:
            raise TrainingInterrupted(
                f"interrupted before epoch {start + 1} finished; nothing was saved."
            ) from None
        checkpoint.save(state_path, snapshot)
        raise TrainingInterrupted(
            f"interrupted after epoch {snapshot['epoch']} of {epochs}; the run's state is in "
            f"{state_path}. Continue it with the same command plus --resume."
        ) from None
    bar.close()

    weight, bias = scaling.unscale(model)
    details = {
        "epochs_run": epoch,
        "best_epoch": best_epoch,
        "stopped_early": stopped_early,
        "resumed_from_epoch": start if config.resume else None,
        "best_loss_standardized": best_loss,
        "monitored": "val" if val is not None else "train",
    }
    return weight, bias, details


class _Standardizer:
    """Feature and target scaling for the iterative solvers, and its exact inverse."""

    def __init__(self, features: np.ndarray, targets: np.ndarray, intercept: bool) -> None:
        if intercept:
            self.x_mean, self.x_scale = features.mean(axis=0), features.std(axis=0)
            self.y_mean, self.y_scale = targets.mean(axis=0), targets.std(axis=0)
        else:  # no centring: a centred model would need the intercept it does not have
            self.x_mean, self.y_mean = np.zeros(features.shape[1]), np.zeros(targets.shape[1])
            self.x_scale = np.sqrt((features**2).mean(axis=0))
            self.y_scale = np.sqrt((targets**2).mean(axis=0))
        self.x_scale = np.where(self.x_scale > 0, self.x_scale, 1.0)
        self.y_scale = np.where(self.y_scale > 0, self.y_scale, 1.0)

    def tensors(
        self, features: np.ndarray, targets: np.ndarray, dtype: Any, device: Any
    ) -> tuple[Any, Any]:
        import torch

        x = torch.as_tensor((features - self.x_mean) / self.x_scale, dtype=dtype, device=device)
        y = torch.as_tensor((targets - self.y_mean) / self.y_scale, dtype=dtype, device=device)
        return x, y

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


def _progress_bar(config: TrainConfig, epochs: int, start: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=epochs,
        initial=start,
        desc=config.solver,
        unit="epoch",
        file=sys.stderr,
        disable=not config.progress,
        leave=False,
        dynamic_ncols=True,
    )


def _fingerprint(
    config: TrainConfig,
    hyper: dict[str, Any],
    spec: ModelSpec,
    dataset: Dataset,
    device: Any,
    val_fraction: float,
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
        "data_sha256": dataset.sha256,
        "val_fraction": val_fraction,
        "device": str(device),
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
    train_chunks: Callable[[], Any],
    spec: ModelSpec,
    l2: float,
    device: Any,
    model_metrics: dict[str, Any],
    notes: list[str],
) -> dict[str, Any] | None:
    """How far an iterative solution is from the exact one on the same training rows."""
    try:
        moments = exact.accumulate(train_chunks(), device)
        fit = exact.solve(
            moments, spec.n_features, spec.feature_names, spec.intercept, l2, train_chunks
        )
    except CollinearityError as error:
        notes.append(f"no optimality gap: the exact solution is not unique ({error})")
        return None
    best = regression_metrics(train_chunks(), fit.weight, fit.bias, spec.target_names)
    gap = {
        "r2": model_metrics["r2"],
        "r2_exact": best["r2"],
        "r2_gap": None if best["r2"] is None else best["r2"] - model_metrics["r2"],
        "mse": model_metrics["mse"],
        "mse_exact": best["mse"],
        "mse_excess": model_metrics["mse"] - best["mse"],
    }
    return gap


def _checkpoint_payload(
    result: TrainResult, config: TrainConfig, dataset: Dataset
) -> dict[str, Any]:
    import platform

    import pyarrow
    import torch

    import toolkit

    spec = result.spec
    model = build_model(spec, result.weight, result.bias)
    count = min(dataset.n_rows, PARITY_SAMPLE_ROWS)
    rows = np.unique(np.linspace(0, dataset.n_rows - 1, count).round().astype(np.int64))
    sample = dataset.table.take(rows).select(spec.feature_names)
    sample_array = np.column_stack([c.to_numpy() for c in sample.columns]).astype(np.float64)
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
        "parity_sample": torch.from_numpy(np.ascontiguousarray(sample_array)),
        "versions": {
            "toolkit": toolkit.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pyarrow": pyarrow.__version__,
            "python": platform.python_version(),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
