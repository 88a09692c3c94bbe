"""Table models for tests: plans, raw rows, a pandas reference encoding, checkpoints.

`pandas_encode` is the reference every table test compares against: treatment coding
spelled out with pandas (Categorical + get_dummies, dropping the reference level),
written apart from toolkit's encoders. `table_checkpoint` writes a real checkpoint (the
estimator's fit on encoded columns, `feature_names` = the plan's encoded names) and adds
`checkpoint["table"] = plan.to_dict()`, as training does for a non-trivial plan.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.columns import CATEGORICAL, ColumnPlan, TablePlan

_OTHER = "\x00(other)"  # the reference's own name for the shared level: no text equals it


def example_plan() -> TablePlan:
    """Text with folded levels, a fill and an indicator; bool without a fill; an int
    category; a numeric column with a fill and an indicator; one without."""
    return TablePlan(
        (
            ColumnPlan(
                "firm",
                CATEGORICAL,
                "string",
                ("Chrysler", "GE", "GM"),
                ("IBM", "US Steel"),
                fill="GE",
                indicator=True,
                missing_count=3,
            ),
            ColumnPlan("value", "numeric", "float", fill=1.5, indicator=True, missing_count=2),
            ColumnPlan("union", CATEGORICAL, "bool", ("false", "true")),
            ColumnPlan("capital", "numeric", "float"),
            ColumnPlan("year", CATEGORICAL, "int", ("1935", "1936", "1940"), fill="1936"),
        ),
        missing="mean",
        na_values=("NA",),
        max_levels=4,
    )


def unseen(column: ColumnPlan) -> str:
    text = "(unseen)"
    while text in column.levels or text in column.other:
        text += "!"
    return text


def raw_rows(
    plan: TablePlan, rows: int, seed: int = 0, unknown: bool = True
) -> dict[str, np.ndarray]:
    """Random raw columns: every key of each categorical column (levels, folded levels,
    "" and na tokens where there is a fill, an unseen level when `unknown`), numeric
    values with NaN only where the column has a fill."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for column in plan.columns:
        if column.kind == CATEGORICAL:
            pool = [*column.levels, *column.other]
            if column.fill is not None:
                pool += ["", *plan.na_values]
            if unknown:
                pool.append(unseen(column))
            columns[column.name] = np.array([pool[i] for i in rng.integers(0, len(pool), rows)])
        else:
            values = rng.normal(3.0, 2.0, rows)
            if column.fill is not None:
                values[rng.random(rows) < 0.25] = np.nan
            columns[column.name] = values
    return columns


def pandas_encode(
    plan: TablePlan, columns: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, np.ndarray]:
    """(encoded columns named as plan.encoded_names, unknown counts per row)."""
    parts, unknown = [], 0
    for column in plan.columns:
        raw = pd.Series(columns[column.name])
        if column.kind != CATEGORICAL:
            values = raw.astype(float)
            missing = values.isna()
            parts.append(
                (values if column.fill is None else values.fillna(column.fill)).rename(column.name)
            )
        else:
            texts = raw.astype(str)
            missing = texts.isin(["", *plan.na_values])
            # A missing cell without a fill: the reference's zeros, not unknown.
            mapped = texts.where(~missing, column.fill or column.levels[0])
            mapped = mapped.where(~mapped.isin(column.other), _OTHER)
            categories = [*column.levels, *([_OTHER] if column.other else [])]
            known = mapped.where(mapped.isin(categories))  # unknown texts -> NaN
            coded = pd.Categorical(known, categories=categories)
            unknown = unknown + np.asarray(pd.isna(coded), np.int64)
            dummies = pd.get_dummies(coded, dtype=float).iloc[:, 1:]  # drop the reference
            dummies.columns = [
                f"{column.name}[{'(other)' if c == _OTHER else c}]" for c in categories[1:]
            ]
            parts.append(dummies)
        if column.indicator:
            parts.append(missing.astype(float).rename(f"{column.name}[(missing)]"))
    encoded = pd.concat(parts, axis=1)
    assert list(encoded.columns) == plan.encoded_names
    return encoded, np.broadcast_to(np.asarray(unknown, np.int64), (len(encoded),)).copy()


def table_checkpoint(
    path: Path, plan: TablePlan, targets: int = 1, dtype: str = "float64", seed: int = 0
) -> Path:
    """A checkpoint of a model on `plan`'s encoded columns, with "table" set. The fit is on
    random full-rank rows (a one-hot design may be collinear); the parity sample holds the
    encoding of raw rows, as training keeps encoded training rows."""
    import torch

    from toolkit import LinearRegressor
    from toolkit.training import checkpoint

    rng = np.random.default_rng(seed)
    width = len(plan.encoded_names)
    x = pd.DataFrame(rng.normal(0, 1, (4 * width + 10, width)), columns=plan.encoded_names)
    y = x.to_numpy() @ rng.normal(0, 2, (width, targets)) + rng.normal(0, 0.1, (len(x), targets))
    fitted = LinearRegressor(dtype=dtype).fit(x, y if targets > 1 else y[:, 0])
    saved = fitted.save_checkpoint(path.with_suffix(".plain.pt"))
    payload = checkpoint.load(saved)
    encoded, _ = pandas_encode(plan, raw_rows(plan, 64, seed, unknown=False))
    payload["parity_sample"] = torch.from_numpy(encoded.to_numpy(np.float64).copy())
    payload["table"] = plan.to_dict()
    return checkpoint.save(path, payload)
