"""`toolkit.train`: the training stage as one documented function, as the CLI calls it.

Each stage of toolkit is one function, importable without the command line:

    toolkit.train(...)           fit, write the checkpoint       (here; `toolkit train`)
    toolkit.export(...)          checkpoint -> ONNX, gated       (`toolkit.export.export_model`;
                                                                   `toolkit export`)
    toolkit.runtime.Predictor    run the ONNX file               (`toolkit predict`, `serve`)
    toolkit.LinearRegressor      all of it as a scikit-learn estimator

Heavy modules (torch, pyarrow) are imported when a function runs, not when this module is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.defaults import (
    ALPHA,
    CHECKPOINT,
    CHUNK_ROWS,
    DEVICE,
    DTYPE,
    L2,
    MAX_LEVELS,
    MISSING,
    NA_VALUES,
    SEED,
    SOLVER,
    WEIGHT,
)

if TYPE_CHECKING:
    from toolkit.training import TrainResult

__all__ = ["train"]

# Keywords that take names: one name may be given as a string.
_NAME_LISTS = ("targets", "features", "categorical", "na_values")


def train(
    data: Any = None,
    *,
    targets: str | Sequence[str] = (),
    features: Sequence[str] = (),
    val_fraction: float | None = None,
    solver: str = SOLVER,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    patience: int | None = None,
    l2: float = L2,
    intercept: bool = True,
    dtype: str = DTYPE,
    device: str = DEVICE,
    seed: int = SEED,
    out: str | Path = CHECKPOINT,
    resume: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool = False,
    alpha: float = ALPHA,
    weight: str | None = WEIGHT,
    categorical: str | Sequence[str] = (),
    missing: str = MISSING,
    missing_indicator: bool = False,
    na_values: str | Sequence[str] = NA_VALUES,
    max_levels: int = MAX_LEVELS,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Fit the linear regressor on `data` as `toolkit train` does; write the checkpoint `out`.

    Parameters
    ----------
    data : str, Path, pyarrow.Table, DataFrame or None, default=None
        A CSV or Parquet file, a folder of shards or a glob; or a table in memory (pyarrow,
        pandas or polars: columns picked by name as a file's). None: the seed data.
    targets : str or sequence of str, default=()
        The target column(s), or one as a string (so too `categorical`, `na_values`). The
        keywords `features` to `max_levels` are `TrainConfig`'s fields, explained in its
        table: `toolkit train`'s options by name (`--batch-size` is `batch_size`).
    on_epoch_end : callable or None, default=None
        Called as `on_epoch_end(epoch, losses)` after each epoch of an iterative solver.

    Returns
    -------
    TrainResult
        The weights as saved, the metrics, the solver's details, the run's notes.

    Raises
    ------
    UsageError, DataError
        An option that cannot be used; data that cannot be fitted (the message names the
        file, row, column and value). Both are ValueErrors.
    """
    options = {name: value for name, value in locals().items() if name != "on_epoch_end"}
    options.update({name: _names(options[name]) for name in _NAME_LISTS})
    from toolkit.training import TrainConfig
    from toolkit.training import train as run

    return run(TrainConfig(**options), on_epoch_end)


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    """One name given as a string, or several."""
    return (value,) if isinstance(value, str) else tuple(value)
