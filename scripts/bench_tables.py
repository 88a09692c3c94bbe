"""Benchmark categorical tables against the same table one-hot encoded by hand (issue 15).

Two figures, each a ratio against a baseline timed in the same run:

- training: `toolkit train --solver exact` on a table with 3 text columns of 50 levels and
  5 numeric columns, against the same rows pre-encoded by hand (147 dummy columns named as
  toolkit names them, `c1[L07]`), fresh processes, interleaved rounds, median wall time;
  CSV and Parquet. Target: within 1.5x. The two fits must agree (coefficients by name).
- one-row prediction: `Predictor.predict` of the table model on one record with raw values
  (a dict of text and numbers), against `Predictor.predict` of the pre-encoded numeric
  model on its (1, 152) float32 row; best of interleaved samples. Target: within 2x.
  For information: the table model fed one row as a columns mapping.

    .venv/bin/python scripts/bench_tables.py --quick             # smoke run
    .venv/bin/python scripts/bench_tables.py --json tables.json  # full run, about 2 minutes

A report, not a test: it exits 0 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_runtime import interleave
from benchlib import ROOT, Row, finish, print_table, row

SEED = 0
CATEGORICAL, LEVELS, NUMERIC = 3, 50, 5
TARGETS = {"train": 1.5, "row": 2.0}


def make_tables(folder: Path, rows: int) -> dict[str, Path]:
    """raw.csv/.parquet (text levels) and encoded.csv/.parquet (dummies by hand), same rows."""
    import pandas as pd

    rng = np.random.default_rng(SEED)
    raw: dict[str, Any] = {}
    y = rng.standard_normal(rows) * 0.1
    for j in range(NUMERIC):
        raw[f"x{j}"] = rng.standard_normal(rows)
        y += (j + 1) * raw[f"x{j}"]
    for c in range(1, CATEGORICAL + 1):
        codes = rng.integers(0, LEVELS, rows)
        raw[f"c{c}"] = np.array([f"L{k:02d}" for k in range(LEVELS)])[codes]
        y += rng.standard_normal(LEVELS)[codes]
    raw["y"] = y
    frame = pd.DataFrame(raw)
    encoded = frame[[f"x{j}" for j in range(NUMERIC)]].copy()
    for c in range(1, CATEGORICAL + 1):
        # Treatment coding: the first sorted level is the reference (statsmodels, R, toolkit).
        dummies = pd.get_dummies(frame[f"c{c}"], dtype=np.float64).iloc[:, 1:]
        dummies.columns = [f"c{c}[{level}]" for level in dummies.columns]
        encoded = pd.concat([encoded, dummies], axis=1)
    encoded["y"] = frame["y"]
    paths = {}
    for name, table in (("raw", frame), ("encoded", encoded)):
        paths[f"{name}.csv"] = folder / f"{name}.csv"
        table.to_csv(paths[f"{name}.csv"], index=False)
        paths[f"{name}.parquet"] = folder / f"{name}.parquet"
        table.to_parquet(paths[f"{name}.parquet"], index=False)
    return paths


def train_once(data: Path, out: Path) -> tuple[float, dict[str, Any]]:
    """Wall seconds of a fresh `toolkit train` process, and its --json summary."""
    command = [sys.executable, "-m", "toolkit", "train", "--data", str(data), "--target", "y"]
    command += ["--dtype", "float64", "--val-fraction", "0", "--json", "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"toolkit train failed on {data}:\n{done.stderr}")
    return seconds, json.loads(done.stdout)


def bench_train(paths: dict[str, Path], folder: Path, rounds: int) -> tuple[list[Row], dict]:
    summary: list[Row] = []
    figures: dict[str, Any] = {}
    for suffix in ("csv", "parquet"):
        times: dict[str, list[float]] = {"raw": [], "encoded": []}
        fits: dict[str, dict[str, Any]] = {}
        for round_ in range(rounds):
            order = ["raw", "encoded"] if round_ % 2 == 0 else ["encoded", "raw"]
            for side in order:
                seconds, fits[side] = train_once(paths[f"{side}.{suffix}"], folder / f"{side}.pt")
                times[side].append(seconds)
        check_same_fit(fits["raw"], fits["encoded"])
        medians = {side: statistics.median(values) for side, values in times.items()}
        ratio = medians["raw"] / medians["encoded"]
        print_table(
            f"train, {suffix}: median of {rounds} fresh processes",
            [("side", "median s"), *((k, f"{v:.3f}") for k, v in medians.items())],
        )
        figures[suffix] = {"seconds": medians, "ratio": ratio}
        target = TARGETS["train"]
        summary.append(
            row(
                f"train {suffix}: raw / pre-encoded",
                f"{ratio:.2f}x",
                f"<= {target}x",
                ratio <= target,
            )
        )
    return summary, figures


def check_same_fit(raw: dict[str, Any], encoded: dict[str, Any]) -> None:
    """Both fits name the same columns and agree (float64, same rows: to 1e-8 relative)."""
    if raw["features"] != encoded["features"]:
        raise SystemExit(
            f"feature names differ: {raw['features'][:8]} vs {encoded['features'][:8]}"
        )
    a = np.array(raw["weights"] + [raw["bias"]], dtype=object)
    b = np.array(encoded["weights"] + [encoded["bias"]], dtype=object)
    left = np.concatenate([np.ravel(v) for v in a]).astype(float)
    right = np.concatenate([np.ravel(v) for v in b]).astype(float)
    if not np.allclose(left, right, rtol=1e-8, atol=1e-10):
        raise SystemExit("the raw and pre-encoded fits disagree")


def bench_row(folder: Path, repeats: int, calls: int) -> tuple[list[Row], dict]:
    """One-row predict: raw record on the table model vs a float row on the encoded model."""
    from toolkit.export import export_model
    from toolkit.runtime import Predictor

    export_model(folder / "raw.pt", folder / "raw.onnx")
    export_model(folder / "encoded.pt", folder / "encoded.onnx")
    table, numeric = Predictor(folder / "raw.onnx"), Predictor(folder / "encoded.onnx")
    record: dict[str, Any] = {f"x{j}": 0.5 * j for j in range(NUMERIC)}
    record.update({f"c{c}": f"L{7 * c:02d}" for c in range(1, CATEGORICAL + 1)})
    columns = {name: [value] for name, value in record.items()}
    names = numeric.feature_names
    vector = np.zeros((1, len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        vector[0, j] = record.get(name, 0.0)
        if "[" in name:
            column, level = name[:-1].split("[", 1)
            vector[0, j] = float(record[column] == level)
    want = numeric.predict(vector)
    got = table.predict([record])
    if not np.allclose(got, want, rtol=1e-5, atol=1e-5):
        raise SystemExit(f"table and encoded models disagree: {got} vs {want}")
    sides = {
        "encoded model, predict(float row)": lambda: numeric.predict(vector),
        "table model, predict([record])": lambda: table.predict([record]),
        "table model, predict(columns)": lambda: table.predict(columns),
    }
    best = interleave(sides, repeats, calls)
    print_table(
        "one-row predict: best us per call",
        [("side", "us"), *((k, f"{v * 1e6:.2f}") for k, v in best.items())],
    )
    baseline = best["encoded model, predict(float row)"]
    ratio = best["table model, predict([record])"] / baseline
    by_columns = best["table model, predict(columns)"] / baseline
    target = TARGETS["row"]
    summary = [
        row(
            "1-row predict: raw record / numeric model",
            f"{ratio:.2f}x",
            f"<= {target}x",
            ratio <= target,
        ),
        row(
            "1-row predict: columns mapping / numeric model",
            f"{by_columns:.2f}x",
        ),
    ]
    return summary, {"microseconds": {k: v * 1e6 for k, v in best.items()}, "ratio": ratio}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 1 round")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args()
    rows, rounds = (20_000, 1) if args.quick else (args.rows, args.rounds)
    print(
        f"config: rows={rows}, rounds={rounds}, categorical={CATEGORICAL}x{LEVELS} levels, "
        f"numeric={NUMERIC}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-tables-") as name:
        folder = Path(name)
        paths = make_tables(folder, rows)
        train_rows, train_figures = bench_train(paths, folder, rounds)
        row_rows, row_figures = bench_row(folder, 5 if args.quick else 30, 2_000)
    report = {"rows": rows, "train": train_figures, "row": row_figures}
    return finish(report, train_rows + row_rows, args.json)


if __name__ == "__main__":
    sys.exit(main())
