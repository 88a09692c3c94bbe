"""Benchmark Predictor.predict on a table model (raw categorical inputs) against numeric models.

Issue 15's bar: one-row prediction with raw categorical inputs within 2x of a numeric-only
model. The table model has 3 categorical columns of 50 levels and 2 numeric columns (149
encoded columns), built by toolkit's export (toolkit/export/tables.py) with seeded
weights; the numeric models are plain Gemm graphs: the same 149 columns pre-encoded by
hand (the same weights), and the 2-feature seed shape. As bench_runtime.py, every figure
is the best (minimum) of N interleaved samples, sides in a rotating order; a report, not a
test (exit 0 when a target is missed). Sides, one row:

- table, record: `predict({"c0": "L03", ..., "x1": 1.0})` (the serve path's form)
- table, [record] / row: `predict([{...}])`, `predict(["L03", ..., 1.0])`
- table, file graph run alone: the file's graph run by onnxruntime on ready string
  inputs (what the general path runs)
- table, one-row graph run alone: the graph that predict(record) runs
  (toolkit/runtime/table_fast.py: no text inputs, bound buffers), on ready inputs
- numeric 149 / numeric 2: `predict(x)` with x a (1, F) float32 array

Batches (4,096 rows): a dict of columns (numpy str and float arrays) and a pandas frame
against the numeric 149 model's array, for information.

    .venv/bin/python scripts/bench_table_runtime.py --quick
    .venv/bin/python scripts/bench_table_runtime.py --json table.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from bench_runtime import interleave
from benchlib import ROOT, Row, finish, print_seconds, row

SEED = 0
TARGET = 2.0  # table record / numeric, one row
LEVELS = 50
CATEGORICAL = 3
BATCH = 4096
TABLE_RECORD = "table: predict(record)"
TABLE_LIST = "table: predict([record])"
TABLE_ROW = "table: predict(row)"
TABLE_RUN = "table: file graph run alone"
TABLE_FAST_RUN = "table: one-row graph run alone"
NUMERIC_WIDE = "numeric 149: predict(x)"
NUMERIC_SEED = "numeric 2: predict(x)"


def build(folder: Path) -> tuple[Path, Path, Path]:
    """The table model, its pre-encoded numeric twin and a 2-feature numeric model."""
    import onnx

    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "tests" / "runtime"))
    from runtime_models import linear_proto
    from table_models import exported_proto, weights

    from toolkit.columns import CATEGORICAL as KIND
    from toolkit.columns import NUMERIC, ColumnPlan, TablePlan

    levels = tuple(f"L{j:02d}" for j in range(LEVELS))
    columns = [ColumnPlan(f"c{i}", KIND, "string", levels) for i in range(CATEGORICAL)]
    columns += [ColumnPlan("x1", NUMERIC, "float"), ColumnPlan("x2", NUMERIC, "float")]
    plan = TablePlan(tuple(columns), unknown_level="error")
    weight, bias = weights(plan, seed=SEED)
    paths = folder / "table.onnx", folder / "numeric149.onnx", folder / "numeric2.onnx"
    onnx.save_model(exported_proto(plan, weight, bias), paths[0])
    onnx.save_model(linear_proto(weight.astype(np.float32), bias.astype(np.float32)), paths[1])
    seed_w = np.array([[1.0, 1.0]], np.float32)
    onnx.save_model(linear_proto(seed_w, np.array([-1.0], np.float32)), paths[2])
    return paths


def bench(paths: tuple[Path, Path, Path], args: argparse.Namespace) -> dict[str, Any]:
    from toolkit.runtime import Predictor

    table, wide, seed = (Predictor(p, providers="cpu") for p in paths)
    rng = np.random.default_rng(SEED)
    record = {f"c{i}": f"L{rng.integers(LEVELS):02d}" for i in range(CATEGORICAL)}
    record.update(x1=1.25, x2=-0.5)
    encoded = np.zeros((1, wide.n_features), np.float32)
    for i in range(CATEGORICAL):
        level = int(record[f"c{i}"][1:])
        if level:  # L00 is the reference: no column
            encoded[0, i * (LEVELS - 1) + level - 1] = 1.0
    encoded[0, -2:] = [record["x1"], record["x2"]]
    if not np.allclose(table.predict(record), wide.predict(encoded), atol=1e-4):
        raise RuntimeError("the table model and its pre-encoded twin disagree")
    feeds = {k: v.copy() for k, v in table.prepare(record).items()}
    outputs = [table.output_name, "unknown_levels"]
    run = table.session._sess.run if hasattr(table.session, "_sess") else table.session.run
    x2 = np.array([[1.0, 2.0]], np.float32)
    runner = table._table.one_row
    if runner is None:
        raise RuntimeError("the table model did not get the one-row fast path")
    table.predict(record)  # binds this thread's buffers, filled with the record
    fast_run = runner._local.state[0]
    one = {
        TABLE_RECORD: lambda: table.predict(record),
        TABLE_LIST: lambda: table.predict([record]),
        TABLE_ROW: lambda: table.predict(list(record.values())),
        TABLE_RUN: lambda: run(outputs, feeds, None),
        TABLE_FAST_RUN: fast_run,
        NUMERIC_WIDE: lambda: wide.predict(encoded),
        NUMERIC_SEED: lambda: seed.predict(x2),
    }
    seconds = interleave(one, args.repeats, args.calls)
    columns = {f"c{i}": np.array([f"L{j:02d}" for j in rng.integers(LEVELS, size=BATCH)])
               for i in range(CATEGORICAL)}  # fmt: skip
    columns.update(x1=rng.standard_normal(BATCH), x2=rng.standard_normal(BATCH))
    frame = _frame(columns)
    matrix = rng.standard_normal((BATCH, wide.n_features)).astype(np.float32)
    many = {
        "table: predict(columns)": lambda: table.predict(columns),
        "numeric 149: predict(x)": lambda: wide.predict(matrix),
    }
    if frame is not None:
        many["table: predict(pandas)"] = lambda: table.predict(frame)
    batch = interleave(many, max(3, args.repeats // 5), max(1, args.calls // 200))
    return {
        "row": {
            "seconds_per_call": seconds,
            "record_over_numeric": seconds[TABLE_RECORD] / seconds[NUMERIC_WIDE],
            "record_over_seed": seconds[TABLE_RECORD] / seconds[NUMERIC_SEED],
            "run_over_numeric": seconds[TABLE_RUN] / seconds[NUMERIC_WIDE],
            "fast_run_over_numeric": seconds[TABLE_FAST_RUN] / seconds[NUMERIC_WIDE],
            "python_us": (seconds[TABLE_RECORD] - seconds[TABLE_FAST_RUN]) * 1e6,
        },
        f"batch {BATCH}": {"seconds_per_call": batch},
    }


def _frame(columns: dict[str, Any]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        return None
    return pd.DataFrame(columns)


def summary(report: dict[str, Any]) -> list[Row]:
    figures = report["row"]
    ratio = figures["record_over_numeric"]
    rows = [
        row("1 row: table record / numeric 149", f"{ratio:.2f}x", f"<= {TARGET}x", ratio <= TARGET),
        row("1 row: table record / numeric 2", f"{figures['record_over_seed']:.2f}x"),
        row("1 row: file graph run alone / numeric 149", f"{figures['run_over_numeric']:.2f}x"),
        row(
            "1 row: one-row graph run alone / numeric 149",
            f"{figures['fast_run_over_numeric']:.2f}x",
        ),
        row("1 row: table Python around the run", f"{figures['python_us']:.2f} us"),
    ]
    for key in ("row", f"batch {BATCH}"):
        for side, seconds in report[key]["seconds_per_call"].items():
            rows.append(row(f"{key}: {side}", f"{seconds * 1e6:.2f} us"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25, help="samples per side: best of N")
    parser.add_argument("--calls", type=int, default=2000, help="single-row calls per sample")
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer samples")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.calls = 3, 200
    with tempfile.TemporaryDirectory() as folder:
        report = bench(build(Path(folder)), args)
    for key, figures in report.items():
        print_seconds(key, figures["seconds_per_call"])
    return finish(report, summary(report), args.json)


if __name__ == "__main__":
    sys.exit(main())
