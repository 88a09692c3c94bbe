"""Tables with text, booleans and gaps that the table tests share (a helper module, as
io_files.py: a conftest.py here would shadow the top-level one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from toolkit.io import build_plan, open_source, scan
from toolkit.io.tables_plan import TableOptions


def grunfeld() -> pd.DataFrame:
    """statsmodels' Grunfeld investment data: `firm` text, `year` an integer column."""
    import statsmodels.api as sm

    frame = sm.datasets.grunfeld.load_pandas().data
    frame["year"] = frame["year"].astype(int)
    frame["firm"] = frame["firm"].astype(str)
    return frame


def gappy(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Numbers, text, booleans and integers, each with gaps (None), and a full target."""
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 3.0, n).round(3)
    city = rng.choice(["Oslo", "Lima", "Pune", "Kyiv"], n, p=[0.4, 0.3, 0.2, 0.1])
    flag = rng.random(n) < 0.3
    size = rng.integers(1, 4, n)
    frame = pd.DataFrame(
        {
            "x": pd.array(x, dtype="Float64"),
            "city": pd.array(city, dtype=object),
            "flag": pd.array(flag, dtype="boolean"),
            "size": pd.array(size, dtype="Int64"),
        }
    )
    for column, every in (("x", 7), ("city", 11), ("flag", 13), ("size", 17)):
        frame.loc[frame.index % every == 3, column] = None
    frame["y"] = rng.normal(size=n)
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """The frame as CSV: gaps blank, booleans true/false."""
    text = frame.copy()
    for column in text.columns:
        if str(text[column].dtype) == "boolean":
            text[column] = text[column].map({True: "true", False: "false"}, na_action="ignore")
    text.to_csv(path, index=False, na_rep="")
    return path


def write_parquet(frame: pd.DataFrame, path: Path, row_group_size: int | None = None) -> Path:
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size
    )
    return path


def planned(data, options: TableOptions, target: str = "y", rows: int = 65_536, **kwargs):
    """(source with its plan, the plan, the scan) for `data`."""
    source = open_source(data, [target], options=options, **kwargs)
    stats = scan(source, None, rows, options)
    plan = build_plan(stats, options, source.raw_feature_names)
    return source.with_plan(plan), plan, stats


def blocks(source, rows: int = 65_536) -> np.ndarray:
    return np.concatenate(list(source.blocks(rows=rows)))
