"""`--data`: one streaming pass over a data set with the checkpoint's model.

The data are read by the training reader (`toolkit.io.open_source`: a file, a folder of
shards or a glob; CSV or Parquet; chunked, checked, parsed a few chunks ahead), so memory
is bounded by --chunk-rows, and a bad cell gets the same error as in training. The rows
the checkpoint's seeded split held out for validation are set aside by the same hash, so
that on the training data the pass sees exactly the rows the model was fit on.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import DataError, UsageError
from toolkit.report.inputs import Fitted
from toolkit.report.residuals import ResidualPass


@dataclass
class Scanned:
    """The pass's sums and what was read."""

    sums: ResidualPass
    source: str
    held_out_rows: int  # rows the checkpoint's split sets aside as validation rows


def scan(
    fitted: Fitted, data: str | Path, chunk_rows: int, sample_rows: int, progress: bool = False
) -> Scanned:
    """Read `data` once and add every training-side row's residuals to a ResidualPass."""
    from toolkit.io import holdout_mask, open_source

    _check_columns(fitted, data)
    source = _table_source(fitted, data) if fitted.table else None
    if source is None:
        source = open_source(data, fitted.target_names, fitted.feature_names)
    inference = fitted.inference or {}
    sums = ResidualPass(
        fitted.weight,
        fitted.bias,
        inference.get("leverage"),
        fitted.intercept,
        sample_rows,
        fitted.seed,
    )
    fraction = float(fitted.data.get("val_fraction") or 0.0)
    d, held_out = len(fitted.feature_names), 0
    with _one_blas_thread():
        for block in source.blocks(rows=chunk_rows, progress=progress):
            mask = holdout_mask(block, fraction, fitted.seed)
            if mask.any():
                held_out += int(mask.sum())
                block = block[~mask]
            sums.add(block[:, :d], block[:, d:])
    if sums.n == 0:
        raise DataError(
            f"{source.name}: every one of its {held_out:,} rows is a validation row of the "
            f"checkpoint's split (--val-fraction {fraction:g}, seed {fitted.seed}); expected "
            "the training data."
        )
    return Scanned(sums, source.name, held_out)


def _table_source(fitted: Fitted, data: str | Path) -> Any:
    """A raw table read as the model was trained: its raw columns, encoded by its plan."""
    from toolkit.columns import CATEGORICAL, TablePlan
    from toolkit.io import TableOptions, open_source

    plan = TablePlan.from_dict(fitted.table)
    named = tuple(c.name for c in plan.columns if c.kind == CATEGORICAL and c.raw_type != "bool")
    options = TableOptions(categorical=named, missing=plan.missing, na_values=plan.na_values)
    source = open_source(data, fitted.target_names, plan.raw_names, options=options)
    return source.with_plan(plan)


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    """BLAS on one thread during the pass: pyarrow parses on the other cores, and idle
    BLAS threads spin, which starved the parser (40 s instead of 9 s on 2 busy cores)."""
    import scipy.linalg.blas  # noqa: F401 (loaded first: the limit covers loaded libraries)

    from toolkit.training.plain_gram import one_blas_thread

    return one_blas_thread()


def _check_columns(fitted: Fitted, data: str | Path) -> None:
    """Every shard must hold the model's feature and target columns: a usage error if not."""
    from toolkit.io import resolve_sources
    from toolkit.io.formats import open_shard
    from toolkit.io.names import did_you_mean, listed

    features = fitted.feature_names
    if fitted.table:  # a raw table's model needs its raw columns
        from toolkit.columns import TablePlan

        features = TablePlan.from_dict(fitted.table).raw_names
    needed = [*features, *fitted.target_names]
    for path in resolve_sources(data):
        shard = open_shard(path, str(path))
        missing = [name for name in needed if name not in shard.columns]
        if not missing:
            continue
        hints = [
            f"{close!r} for {name!r}"
            for name in missing
            if (close := did_you_mean(name, shard.columns)) is not None
        ]
        hint = f" Did you mean {', '.join(hints)}?" if hints else ""
        raise UsageError(
            f"--data {shard.name} lacks column{'s' if len(missing) > 1 else ''} "
            f"{listed(missing)} that the model in {str(fitted.path)!r} needs (features "
            f"{listed(fitted.feature_names)}; target{'s' if len(fitted.target_names) > 1 else ''}"
            f" {listed(fitted.target_names)}); it has {listed(shard.columns)}.{hint}"
        )
