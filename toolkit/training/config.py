"""What a training run is asked to do: `TrainConfig`, checked against one table of parameters.

Each parameter is declared once in `PARAMETERS` (the rule its value must pass); the checks,
their wording and the solvers' defaults (`toolkit.defaults.SOLVER_DEFAULTS`) all read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.defaults import (
    ALPHA,
    CHECKPOINT,
    CHUNK_ROWS,
    DEVICE,
    DTYPE,
    DTYPES,
    ITERATIVE_SOLVERS,
    L2,
    MAX_LEVELS,
    MISSING,
    MISSING_POLICIES,
    NA_VALUES,
    SEED,
    SOLVER,
    SOLVER_DEFAULTS,
    SOLVERS,
    WEIGHT,
)
from toolkit.errors import UsageError


@dataclass(frozen=True)
class Choice:
    """The value must be one of `choices`."""

    choices: tuple[str, ...]

    def problem(self, name: str, value: Any) -> str | None:
        if value in self.choices:
            return None
        return f"{name} {value!r} is not one of {', '.join(self.choices)}."


@dataclass(frozen=True)
class Bound:
    """The value must pass `allowed`; `expected` completes "--flag must ..."."""

    allowed: Callable[[Any], bool]
    expected: str

    def problem(self, name: str, value: Any) -> str | None:
        if self.allowed(value):
            return None
        return f"{flag(name)} must {self.expected}, got {value!r}."


# Checked for every solver, in this order.
PARAMETERS: dict[str, Choice | Bound] = {
    "solver": Choice(SOLVERS),
    "dtype": Choice(DTYPES),
    "l2": Bound(lambda v: math.isfinite(v) and v >= 0, "be a finite number >= 0"),
    "val_fraction": Bound(lambda v: v is None or 0 <= v < 1, "be in [0, 1)"),  # None: default
    "alpha": Bound(lambda v: 0 < v < 1, "be in (0, 1) (the intervals' level is 1 - alpha)"),
    "missing": Choice(MISSING_POLICIES),
    # One kept level and OTHER is the least a column with more levels than this can keep.
    "max_levels": Bound(lambda v: type(v) is int and v >= 2, "be an integer >= 2"),
}
# The iterative solvers' settings (defaults in SOLVER_DEFAULTS), checked once filled in.
ITERATIVE_PARAMETERS: dict[str, Bound] = {
    "lr": Bound(lambda v: math.isfinite(v) and v > 0, "be a finite number > 0"),
    "epochs": Bound(lambda v: v >= 1, "be at least 1"),
    "batch_size": Bound(lambda v: v >= 0, "be >= 0 (0 = full batch)"),
    "patience": Bound(lambda v: v >= 0, "be >= 0 (0 = never stop early)"),
}


def flag(name: str) -> str:
    """The command-line option of a parameter: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


@dataclass
class TrainConfig:
    """Every choice of a training run; None means "the solver's default".

    The fields are `toolkit train`'s options (`--batch-size` is `batch_size`) and
    `toolkit.train`'s keyword arguments; `hyperparameters()` checks them.

    Parameters
    ----------
    data : str, Path, pyarrow.Table, DataFrame or None, default=None
        A CSV or Parquet file, a folder of shards or a glob; or a table in memory (a
        pyarrow Table, a pandas or polars DataFrame). None: the embedded seed data.
    targets : tuple of str, default=()
        Target columns (several: a multi-output model). Empty: `y`, else the last column.
    features : tuple of str, default=()
        Feature columns. Empty: every column that is not a target.
    val_fraction : float in [0, 1) or None, default=None
        Share of rows held out for validation by a seeded hash of each row. None: 0.2,
        or 0 (with a note) when the data is too small to spare the rows.
    solver : {'exact', 'sgd', 'adam', 'lbfgs'}, default='exact'
        Closed-form least squares, or a PyTorch optimizer on whitened features.
    epochs : int >= 1 or None, default=None
        Iterative solvers: the most epochs to run. None, here and below: the solver's
        default (`toolkit.defaults.SOLVER_DEFAULTS`); any value is refused with 'exact'.
    lr : float > 0 or None, default=None
        Iterative solvers: the learning rate (on standardized data).
    batch_size : int >= 0 or None, default=None
        Iterative solvers: rows per step; 0 is the full batch.
    patience : int >= 0 or None, default=None
        Iterative solvers: stop after this many epochs without improvement; 0 never stops.
    l2 : float >= 0, default=0.0
        Ridge penalty `l2 * ||w||^2` (scikit-learn's `Ridge(alpha)`); the intercept is
        not penalised.
    intercept : bool, default=True
        Fit a bias term; False fits `y = w.x`.
    dtype : {'float32', 'float64'}, default='float32'
        Precision of the saved model and of its ONNX export.
    device : str, default='auto'
        `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
    seed : int in [0, 2**64 - 1], default=0
        Fixes the split, the initialization and the shuffling.
    out : str or Path, default='models/model.pt'
        The checkpoint to write (atomically).
    resume : bool, default=False
        Continue the interrupted iterative run that wrote `out + '.resume'`.
    chunk_rows : int >= 1, default=65536
        Rows per chunk read or re-read by every solver: what bounds memory.
    progress : bool, default=False
        Show progress bars on stderr.
    alpha : float in (0, 1), default=0.05
        The inference's confidence intervals are at level 1 - alpha.
    weight : str or None, default=None
        A column of each row's weight (>= 0): weighted least squares. None: every row 1.
    categorical : tuple of str, default=()
        Integer (or float) columns to encode as categories; text, boolean and
        dictionary-typed feature columns are categorical whatever this says. Treatment
        coding: the first level is the reference; `col[level]` columns for the others.
    missing : {'error', 'drop', 'mean', 'median'}, default='error'
        What a missing value (blank cell, null, empty text, an `na_values` token) does:
        stop with a count of them, drop its row, or fill it (numeric columns with the
        mean or median of their observed values, categorical ones with their most
        frequent level).
    missing_indicator : bool, default=False
        With 'mean' or 'median': add a `col[(missing)]` column (1 where the value was
        missing) for each feature with missing values in the training data.
    na_values : tuple of str, default=()
        Texts that count as missing besides blank cells and nulls, such as "NA".
    max_levels : int >= 2, default=100
        Levels a categorical column keeps; the rarest beyond share one `col[(other)]`.
    """

    data: Any = None  # a file, a folder of shards or a glob; or a table in memory
    targets: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    val_fraction: float | None = None
    solver: str = SOLVER
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    patience: int | None = None
    l2: float = L2
    intercept: bool = True
    dtype: str = DTYPE
    device: str = DEVICE
    seed: int = SEED
    out: Path = CHECKPOINT
    resume: bool = False
    chunk_rows: int = CHUNK_ROWS
    progress: bool = False
    alpha: float = ALPHA  # the inference's confidence intervals are at level 1 - alpha
    weight: str | None = WEIGHT  # a column of row weights (weighted least squares)
    categorical: tuple[str, ...] = ()  # integer columns encoded as categories
    missing: str = MISSING  # what a missing value does: error, drop, mean or median
    missing_indicator: bool = False  # mean/median: a col[(missing)] column per gappy feature
    na_values: tuple[str, ...] = NA_VALUES  # texts that count as missing, besides blanks
    max_levels: int = MAX_LEVELS  # levels kept per categorical column; the rest: (other)

    def hyperparameters(self) -> dict[str, Any]:
        """The solver's settings after defaults are filled in (validated)."""
        _check(PARAMETERS, {name: getattr(self, name) for name in PARAMETERS})
        if self.missing_indicator and self.missing not in ("mean", "median"):
            raise UsageError(
                "--missing-indicator marks imputed values; it needs --missing mean or "
                f"--missing median, not --missing {self.missing}."
            )
        given = {name: getattr(self, name) for name in ITERATIVE_PARAMETERS}
        if self.solver == "exact":
            _refuse_iterative_settings(given, self.resume)
            return {"l2": self.l2}
        settings = dict(SOLVER_DEFAULTS[self.solver])
        settings.update({name: value for name, value in given.items() if value is not None})
        _check(ITERATIVE_PARAMETERS, settings)
        if self.solver == "lbfgs" and settings["batch_size"] != 0:
            raise UsageError(
                "--solver lbfgs uses the full batch (its line search needs it); drop --batch-size."
            )
        settings["l2"] = self.l2
        return settings


def _check(rules: dict[str, Choice | Bound] | dict[str, Bound], values: dict[str, Any]) -> None:
    """Raise UsageError for the first value (in the table's order) that breaks its rule."""
    for name, rule in rules.items():
        if (problem := rule.problem(name, values[name])) is not None:
            raise UsageError(problem)


def _refuse_iterative_settings(given: dict[str, Any], resume: bool) -> None:
    """--solver exact solves in closed form: the iterative solvers' settings do not apply."""
    extra = [name for name, value in given.items() if value is not None]
    if extra:
        raise UsageError(
            f"{flag(extra[0])} applies to the iterative solvers ({', '.join(ITERATIVE_SOLVERS)}), "
            "not to --solver exact, which solves in closed form."
        )
    if resume:
        raise UsageError("--resume continues an iterative run; --solver exact has none.")
